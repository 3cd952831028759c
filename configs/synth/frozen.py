# Frozen CLIP: only the cost aggregator trains (H-CLIP's "Freeze" row).
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(type='frozen')))
