# VPT (Jia et al., 2022): learnable prompt tokens, deep.
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(type='vpt', n_tokens=4, deep=True)))
