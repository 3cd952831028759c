# LoRA (Hu et al., 2021) on q/k/v/out of both encoders, ViT-B/16. The H-CLIP paper gives no rank; r is a sweep axis.
_base_ = ['../catseg/catseg_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(peft=dict(_delete_=True, type='lora', r=16, alpha=16, sites=['q', 'k', 'v', 'out'])))
