# OFT (Qiu et al., 2023): block-diagonal Cayley-orthogonal R on the input side of q/k/v/out.
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(type='oft', block_size=32, sites=['q', 'k', 'v', 'out'])))
