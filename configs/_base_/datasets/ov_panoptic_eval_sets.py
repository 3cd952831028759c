# Panoptic evaluation sets of the open-vocabulary protocol (FC-CLIP / FISA), as
# `eval_datasets` for `ovbench test CONFIG CKPT [--datasets ...]`: ADE20K panoptic
# (150 classes) and Cityscapes panoptic (19). Both give mIoU and PQ (and the oracle
# rows of the mask-classification segmentor). Layouts: docs/panoptic.md.
_ade = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='LoadPanopticAnnotations'), dict(type='PackPanopticInputs')]
_cityscapes = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
               dict(type='LoadPanopticAnnotations'), dict(type='PackPanopticInputs')]
eval_datasets = dict(
    ade150_panoptic=dict(type='ADE20KPanopticDataset', data_root='data/ade/ADEChallengeData2016', split='val', pipeline=_ade),
    cityscapes_panoptic=dict(type='CityscapesPanopticDataset', data_root='data/cityscapes', split='val',
                             pipeline=_cityscapes),
)
del _ade, _cityscapes
