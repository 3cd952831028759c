# Full fine-tuning of both CLIP encoders (at 0.1x the base learning rate), mask pooling.
_base_ = ['./_base_.py']
model = dict(clip=dict(peft=dict(type='full')))
