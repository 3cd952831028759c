# LoRA (Hu et al., 2021) on q/k/v/out of both encoders.
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(type='lora', r=4, alpha=4, sites=['q', 'k', 'v', 'out'])))
