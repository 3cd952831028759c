# Zero-shot MaskCLIP (Zhou et al., ECCV 2022), ViT-B/16: no training.
#   ovbench test configs/baselines/zeroshot_maskclip_vitb16.py --datasets ade150 pc59
_base_ = ['../catseg/catseg_vitb16_coco-stuff171_384.py']
model = dict(aggregator=None, clip=dict(dense='maskclip', peft=dict(_delete_=True, type='frozen')))
