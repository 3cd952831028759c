# FISA evaluated on the semantic open-vocabulary sets (A-847, PC-459, A-150, PC-59,
# VOC-20, VOC-20b): mIoU only (semantic label maps have no segments, so neither PQ nor
# the oracle modes). Use with a checkpoint trained by fisa_vitb16_coco-panoptic.py:
#   ovbench test configs/fisa/fisa_vitb16_coco-panoptic_semantic-sets.py CKPT
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/coco_panoptic_ov.py',
    '../_base_/datasets/ov_eval_sets.py',
    '../_base_/schedules/catseg_80k.py',
    './_base_/fisa_vitb16.py',
]
model = dict(test_cfg=dict(extra_modes=()))
test_evaluator = [dict(type='OpenVocabIoUMetric')]
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.clip': dict(lr_mult=0.1)}))
