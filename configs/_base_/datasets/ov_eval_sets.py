# The six evaluation sets of the open-vocabulary protocol (CAT-Seg / H-CLIP tables),
# as `eval_datasets` for `ovbench test CONFIG CKPT [--datasets ...]`. Layouts and
# preparation: docs/datasets.md. ADE-150 and PC-59 are MMSeg's own classes and
# layouts; the others follow CAT-Seg's preparation scripts.
_resize = dict(type='Resize', scale=(2048, 512), keep_ratio=True)
_wide = [dict(type='LoadImageFromFile'), _resize, dict(type='LoadWideAnnotations'), dict(type='PackSegInputs')]
_reduce = [dict(type='LoadImageFromFile'), _resize, dict(type='LoadAnnotations', reduce_zero_label=True),
           dict(type='PackSegInputs')]
_plain = [dict(type='LoadImageFromFile'), _resize, dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
eval_datasets = dict(
    ade847=dict(type='ADE20K847Dataset', data_root='data/ADE20K_2021_17_01', pipeline=_wide),
    pc459=dict(type='PascalContext459Dataset', data_root='data/VOCdevkit/VOC2010', pipeline=_wide),
    ade150=dict(type='ADE20KDataset', data_root='data/ade/ADEChallengeData2016',
                data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                pipeline=_reduce),
    pc59=dict(type='PascalContextDataset59', data_root='data/VOCdevkit/VOC2010',
              data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
              ann_file='ImageSets/SegmentationContext/val.txt', pipeline=_reduce),
    voc20=dict(type='PascalVOC20Dataset', data_root='data/VOCdevkit/VOC2012', pipeline=_plain),
    voc20b=dict(type='PascalVOC20bDataset', data_root='data/VOCdevkit/VOC2012', pipeline=_plain),
)
del _resize, _wide, _reduce, _plain
