# FISA stage 1 at real scale: the class-agnostic, query-based mask generator
# (QueryMaskGenerator, a compact Mask2Former-style network; docs/fisa.md says why not
# mmdet's Mask2Former) trained on COCO panoptic's segments, classes ignored. Its
# checkpoint is then frozen by every configs/fisa/*_vitb16_coco-panoptic.py config
# (mask_generator_checkpoint). Sizes: 100 queries as Mask2Former; a 5-stage conv
# backbone (strides 2..32), decoder attending to 1/32, 1/16, 1/8 in turn.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/coco_panoptic_ov.py',
    '../_base_/datasets/ov_panoptic_eval_sets.py',
    '../_base_/schedules/catseg_80k.py',
]
clip_mean = [122.771, 116.746, 104.094]
clip_std = [68.501, 66.632, 70.323]
mask_generator = dict(
    type='QueryMaskGenerator', num_queries=100, channels=(64, 128, 256, 384, 512), mask_feature_dim=256,
    query_dim=256, num_layers=9, num_heads=8, ffn_dim=2048, memory_strides=(32, 16, 8))
model = dict(
    type='MaskProposalSegmentor',
    # the classifier's normalisation: stage 2 feeds its (CLIP-normalised) batch to the generator
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=clip_mean, std=clip_std, bgr_to_rgb=True,
        pad_val=0, seg_pad_val=255, size=(384, 384)),
    mask_generator=mask_generator,
    criterion=dict(cost_obj=2.0, cost_bce=5.0, cost_dice=5.0, loss_obj=2.0, loss_bce=5.0, loss_dice=5.0,
                   no_object_weight=0.1),
    test_cfg=dict(score_thr=0.5, overlap_thr=0.8, mask_thr=0.5),
)
val_evaluator = [dict(type='ProposalRecallMetric')]
test_evaluator = val_evaluator
# merged into the base's eval_datasets (ADE20K and Cityscapes panoptic): recall on COCO itself too
eval_datasets = dict(coco_panoptic_val=dict(
    type='COCOPanopticDataset', data_root='data/coco', split='val', pipeline={{_base_.test_pipeline}}))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05), paramwise_cfg=dict(_delete_=True),
                     clip_grad=dict(max_norm=0.01, norm_type=2))
