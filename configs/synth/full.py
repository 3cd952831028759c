# Full fine-tuning of both CLIP encoders (at 0.01x the head's learning rate).
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(type='full')))
