# CAT-Seg: 'attention' tuning (q and v projections + position embeddings, both encoders).
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(clip=dict(peft=dict(type='attention')))
