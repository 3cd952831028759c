# The embedded benchmark's panoptic side (docs/panoptic.md, docs/fisa.md).
# Same images and vocabularies as synth_ov.py; labels are the COCO-panoptic
# PNG + JSON the generator writes (`<dataset>/panoptic_<split>.json`,
# `<dataset>/panoptic/<split>/*.png`), read by OVPanopticDataset, which maps
# categories to the vocabulary by name. Each sample carries gt_sem_seg (for
# mIoU) and gt_panoptic_seg (for PQ).
# Train on synth_train; evaluate on synth_large / synth_medium_shift /
# synth_small (the shared `eval_datasets` key).
synth_root = 'data/synth'
crop_size = (64, 64)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackPanopticInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='PackPanopticInputs'),
]


def _synth(name, split, pipeline):
    return dict(
        type='OVPanopticDataset',
        data_root=f'{synth_root}/{name}',
        ann_file=f'panoptic_{split}.json',
        vocabulary='vocabulary.json',
        data_prefix=dict(img_path='', seg_map_path=f'panoptic/{split}'),
        pipeline=pipeline,
    )


train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=_synth('synth_train', 'train', train_pipeline),
)
# Evaluation in batches of 8: every image of the embedded sets is 64x64 (no padding), and batch 8
# gave the same metrics as batch 1 at half the time (benchmarks/trial_time.py, issue 18).
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=_synth('synth_large', 'val', test_pipeline),
)
test_dataloader = val_dataloader
val_evaluator = [dict(type='OpenVocabIoUMetric'), dict(type='PanopticQualityMetric')]
test_evaluator = [dict(type='OpenVocabIoUMetric'), dict(type='PanopticQualityMetric')]

# The oracle rows (docs/fisa.md): only the mask-classification segmentor writes
# pred_*_oracle_masks / pred_*_oracle_classes (model.test_cfg.extra_modes), so
# configs of that family use
#   test_evaluator = {{_base_.test_evaluator_with_oracles}}
# and report e.g. `oracle_masks/PQ`, `oracle_classes/mIoU` next to `PQ`, `mIoU`.
oracle_evaluators = [
    dict(type=metric, pred_key=f'{pred}_{mode}', prefix=mode)
    for mode in ('oracle_masks', 'oracle_classes')
    for metric, pred in (('OpenVocabIoUMetric', 'pred_sem_seg'), ('PanopticQualityMetric', 'pred_panoptic_seg'))
]
test_evaluator_with_oracles = test_evaluator + oracle_evaluators

# All evaluation sets (the shared `eval_datasets` key): `ovbench test` evaluates each.
eval_datasets = dict(
    synth_large=_synth('synth_large', 'val', test_pipeline),
    synth_medium_shift=_synth('synth_medium_shift', 'val', test_pipeline),
    synth_small=_synth('synth_small', 'val', test_pipeline),
)
del _synth
