# The embedded open-vocabulary benchmark (docs/synthetic_benchmark.md).
# Generate it with `ovbench data synth --out data/synth` (or override data_root
# with the cache path printed by `ovbench data synth`).
# Train on synth_train (COCO-Stuff role: only seen classes labelled); evaluate
# on synth_large / synth_medium_shift / synth_small (ADE-847 / PC-59 / VOC-20
# roles). Each dataset's classes and seen/unseen split come from its
# vocabulary.json, read by OVSegDataset.
synth_root = 'data/synth'
crop_size = (64, 64)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]


def _synth(name, split, pipeline):
    return dict(
        type='OVSegDataset',
        data_root=f'{synth_root}/{name}',
        vocabulary='vocabulary.json',
        data_prefix=dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
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
val_evaluator = dict(type='OpenVocabIoUMetric')
# Test-time: also the image-text alignment diagnostic (needs model.alignment=True).
test_evaluator = [dict(type='OpenVocabIoUMetric'), dict(type='AlignmentMetric')]

# All evaluation sets (the shared `eval_datasets` key): `ovbench test` evaluates each.
eval_datasets = dict(
    synth_large=_synth('synth_large', 'val', test_pipeline),
    synth_medium_shift=_synth('synth_medium_shift', 'val', test_pipeline),
    synth_small=_synth('synth_small', 'val', test_pipeline),
)
del _synth
