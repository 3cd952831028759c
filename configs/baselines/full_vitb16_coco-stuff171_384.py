# Full fine-tuning of both CLIP encoders (0.01x lr), ViT-B/16.
_base_ = ['../catseg/catseg_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(peft=dict(_delete_=True, type='full')))
