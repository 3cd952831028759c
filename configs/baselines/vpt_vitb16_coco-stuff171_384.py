# VPT (Jia et al., 2022): deep learnable prompt tokens in the image encoder, ViT-B/16.
_base_ = ['../catseg/catseg_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(peft=dict(_delete_=True, type='vpt', n_tokens=10, deep=True)))
