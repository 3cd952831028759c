# CAT-Seg, ViT-L/14 (336 px CLIP; 384 crops give a 27x27 patch grid).
_base_ = ['./catseg_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(model_name='ViT-L-14-336', pretrained='openai', out_indices=(7, 15)))
