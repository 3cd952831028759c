# Open-vocabulary panoptic protocol at real scale (FC-CLIP / FISA): train on COCO
# panoptic (133 classes); validate on ADE20K panoptic. The evaluation sets are in
# ov_panoptic_eval_sets.py (panoptic) and ov_eval_sets.py (semantic). Layouts:
# docs/panoptic.md. gt_sem_seg is derived from the panoptic PNGs, so a panoptic set
# gives both mIoU and PQ.
crop_size = (384, 384)
coco_root = 'data/coco'
ade_root = 'data/ade/ADEChallengeData2016'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackPanopticInputs'),
]
# Resize the image only: the annotations are loaded after it, at the original size,
# and predictions are resized back (as MMSeg's test pipelines do).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadPanopticAnnotations'),
    dict(type='PackPanopticInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='COCOPanopticDataset', data_root=coco_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ADE20KPanopticDataset', data_root=ade_root, split='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [dict(type='OpenVocabIoUMetric'), dict(type='PanopticQualityMetric')]
test_evaluator = val_evaluator
