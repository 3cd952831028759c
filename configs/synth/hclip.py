# H-CLIP (methods.md s.2) at embedded scale: block-diagonal R (q = 32: 4 blocks of
# the width-128 towers) on q/k/v (W R) and out (R W) of both encoders, exact Cayley
# on the text encoder only (POF), DCRC in the paper's form. Every ablation axis is
# a key of model.clip.peft.
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(
    type='hclip', q=32, orth='text', orth_lambda=float('inf'), cayley='exact', dcrc='paper', symmetric='both')))
