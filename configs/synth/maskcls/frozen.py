# Frozen CLIP mask classifier (zero-shot): nothing trains; evaluate without a checkpoint:
#   ovbench test configs/synth/maskcls/frozen.py
# (the generator's weights come from mask_generator_checkpoint).
_base_ = ['./_base_.py']
model = dict(clip=dict(peft=dict(type='frozen')))
