# H-CLIP, ViT-L/14 (the released code hard-codes ViT-B/16 and cannot run this).
_base_ = ['./hclip_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(model_name='ViT-L-14-336', pretrained='openai', out_indices=(7, 15)))
