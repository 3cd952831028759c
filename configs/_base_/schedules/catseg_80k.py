# CAT-Seg's recipe (methods.md s.1): AdamW, wd 1e-4, lr 2e-4 for the aggregator and
# 0.01x for CLIP parameters, cosine decay over 80k iterations, grad clipping 0.01.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='PeftOptimWrapperConstructor',  # a PEFT config's lr_mult sets its CLIP's rate
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'backbone.clip': dict(lr_mult=0.01)}),
    clip_grad=dict(max_norm=0.01, norm_type=2),
)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=80000, eta_min=0, by_epoch=False, begin=0, end=80000)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)
