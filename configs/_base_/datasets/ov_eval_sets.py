# Real evaluation sets that MMSegmentation already ships a dataset class for,
# in mmseg's layouts (docs/datasets.md). ADE20K-847, PASCAL-Context-459 and
# VOC-20 (no background) need class-list files and are not wired yet.
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
_test_pipeline_keep_zero = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
eval_datasets = dict(
    ade150=dict(type='ADE20KDataset', data_root='data/ade/ADEChallengeData2016',
                data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                pipeline=_test_pipeline),
    pc59=dict(type='PascalContextDataset59', data_root='data/VOCdevkit/VOC2010',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
              ann_file='ImageSets/SegmentationContext/val.txt', pipeline=_test_pipeline),
    # VOC with its background class = the "VOC-20b" reading (20 classes + background).
    voc20b=dict(type='PascalVOCDataset', data_root='data/VOCdevkit/VOC2012',
                data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                ann_file='ImageSets/Segmentation/val.txt', pipeline=_test_pipeline_keep_zero),
)
del _test_pipeline, _test_pipeline_keep_zero
