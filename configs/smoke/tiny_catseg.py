# A CAT-Seg-style open-vocabulary segmentor at toy scale: a randomly initialised
# tiny CLIP (model_cfg) + a small cost aggregator on the toy dataset. Exercises
# the whole path (vocabulary hook, BCE loss, PEFT, checkpoint, inference) in
# seconds; real-scale configs live in configs/catseg and configs/hclip.
_base_ = ['./tiny_fcn.py']

crop_size = (64, 64)
clip_mean = [122.771, 116.746, 104.094]  # CLIP's normalisation, in 0-255 units
clip_std = [68.501, 66.632, 70.323]
tiny_clip_cfg = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=64, patch_size=8, width=64, layers=4, head_width=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=64, heads=4, layers=2),
)
model = dict(
    _delete_=True,
    type='OVCostAggSegmentor',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=clip_mean, std=clip_std, bgr_to_rgb=True,
        pad_val=0, seg_pad_val=255, size=crop_size),
    clip=dict(
        type='OVCLIP',
        model_name=None,
        model_cfg=tiny_clip_cfg,
        pretrained=None,
        peft=dict(type='attention'),
        templates='single',
        dense='maskclip',
        out_indices=(1, 2),
    ),
    aggregator=dict(
        hidden_dim=32, num_layers=2, num_heads=4, window=4,
        appearance_guidance_dim=16, text_guidance_dim=16,
        decoder_dims=(16, 16), decoder_guidance_dims=(8, 8)),
    test_cfg=dict(mode='whole'),
)
custom_hooks = [dict(type='VocabularyHook')]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='PeftOptimWrapperConstructor',  # a PEFT config's lr_mult sets its CLIP's rate
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
    # CAT-Seg recipe: CLIP parameters at 0.01x the head's learning rate.
    paramwise_cfg=dict(custom_keys={'backbone.clip': dict(lr_mult=0.01)}),
    clip_grad=dict(max_norm=0.01, norm_type=2),
)
