# OFT (Qiu et al., 2023): block-diagonal Cayley R on the input side of q/k/v/out, ViT-B/16.
_base_ = ['../catseg/catseg_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(peft=dict(_delete_=True, type='oft', block_size=128, sites=['q', 'k', 'v', 'out'])))
