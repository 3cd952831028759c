# LoRA (Hu et al., 2021) on q/k/v/out of both CLIP encoders, mask pooling.
_base_ = ['./_base_.py']
model = dict(clip=dict(peft=dict(type='lora', r=4, alpha=4, sites=['q', 'k', 'v', 'out'])))
