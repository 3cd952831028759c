# FISA (Chng et al., arXiv 2409.16278; methods.md s.3) with CLIP ViT-B/16, the
# harness's reading (the paper's text and code are not public; every choice below is a
# key, named in docs/fisa.md): the stage-1 mask generator frozen; each proposal
# classified by a mask token (attention restricted to its mask, last 3 blocks); SEVE
# injects the vocabulary's text embeddings into the first 3 visual blocks
# (zero-initialised tanh-gated cross-attention); SIMO trains only the query
# projections of the last 4 visual blocks, separately for image and mask tokens.
# The model only: datasets and schedule come from the configs that use it.
# Train it first: `ovbench train configs/fisa/mask_generator_coco-panoptic_384.py`.
mask_generator_checkpoint = 'work_dirs/mask_generator_coco-panoptic_384/iter_80000.pth'
clip_mean = [122.771, 116.746, 104.094]
clip_std = [68.501, 66.632, 70.323]
model = dict(
    type='OVMaskClassSegmentor',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=clip_mean, std=clip_std, bgr_to_rgb=True,
        pad_val=0, seg_pad_val=255, size=(384, 384)),
    clip=dict(
        type='OVCLIP', model_name='ViT-B-16', pretrained='openai',
        # SIMO on the last 4 blocks keeps FISA under 5% of CLIP's parameters at ViT-B/16
        # (all 12 blocks with both deltas would be 8.7%: docs/peft.md)
        peft=dict(type='simo', image_tokens=True, mask_tokens=True, blocks=[-4, -3, -2, -1]),
        templates='single', dense='maskclip'),
    mask_generator=dict(
        type='QueryMaskGenerator', num_queries=100, channels=(64, 128, 256, 384, 512), mask_feature_dim=256,
        query_dim=256, num_layers=9, num_heads=8, ffn_dim=2048, memory_strides=(32, 16, 8)),
    mask_generator_checkpoint=mask_generator_checkpoint,
    seve=dict(blocks=(0, 1, 2), dim=64, heads=4, gate_init=0.0),
    mask_embedding='tokens',
    mask_tokens=dict(num_blocks=3, bias='hard'),
    logit_scale=None,
    train_cfg=dict(match_iou=0.5),
    test_cfg=dict(mode='whole', score_threshold=0.0, overlap_threshold=0.8, objectness_threshold=0.0,
                  extra_modes=('oracle_masks', 'oracle_classes')),
)
custom_hooks = [dict(type='VocabularyHook')]
