# The cost-aggregation open-vocabulary segmentor on CLIP ViT-B/16 (CAT-Seg's
# reference sizes, Cho et al. CVPR 2024; see ../../../docs and methods.md s.1).
# `clip.pretrained`: an open_clip tag ('openai', 'laion2b_s34b_b88k', ...) or a
# local file; None = random weights (timing/memory runs, tests).
clip_mean = [122.771, 116.746, 104.094]
clip_std = [68.501, 66.632, 70.323]
data_preprocessor = dict(
    type='SegDataPreProcessor', mean=clip_mean, std=clip_std, bgr_to_rgb=True,
    pad_val=0, seg_pad_val=255, size=(384, 384))
model = dict(
    type='OVCostAggSegmentor',
    data_preprocessor=data_preprocessor,
    clip=dict(
        type='OVCLIP',
        model_name='ViT-B-16',
        pretrained='openai',
        peft=dict(type='attention'),
        templates='single',          # "A photo of a {} in the scene." (H-CLIP's config); 'vild' for the ViLD set
        dense='last',                # CAT-Seg uses the final-layer patch tokens
        out_indices=(3, 7),          # decoder guidance layers for ViT-B/16
    ),
    aggregator=dict(
        hidden_dim=128, num_layers=2, num_heads=4, window=12,
        appearance_guidance_dim=128, text_guidance_dim=128,
        decoder_dims=(64, 32), decoder_guidance_dims=(32, 16)),
    test_cfg=dict(mode='slide', crop_size=(384, 384), stride=(256, 256)),
)
custom_hooks = [dict(type='VocabularyHook')]
