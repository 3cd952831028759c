# FISA at real scale (model: ./_base_/fisa_vitb16.py): train on COCO panoptic; test
# mIoU and PQ on ADE20K and Cityscapes panoptic, with the bottleneck rows
# oracle_masks/* and oracle_classes/*. The semantic sets: *_semantic-sets.py.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/coco_panoptic_ov.py',
    '../_base_/datasets/ov_panoptic_eval_sets.py',
    '../_base_/schedules/catseg_80k.py',
    './_base_/fisa_vitb16.py',
]

# the normal row and the bottleneck rows oracle_masks/*, oracle_classes/* (docs/fisa.md)
_oracles = [dict(type=m, pred_key=f'{p}_{mode}', prefix=mode)
            for mode in ('oracle_masks', 'oracle_classes')
            for m, p in (('OpenVocabIoUMetric', 'pred_sem_seg'), ('PanopticQualityMetric', 'pred_panoptic_seg'))]
test_evaluator = [dict(type='OpenVocabIoUMetric'), dict(type='PanopticQualityMetric')] + _oracles
del _oracles
# New modules (SEVE) at the base rate, CLIP-internal deltas (SIMO) at 0.1x.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.clip': dict(lr_mult=0.1)}))
