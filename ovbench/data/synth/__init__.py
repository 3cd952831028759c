"""The synthetic world of the embedded open-vocabulary benchmark (see docs/synthetic_benchmark.md)."""
from ovbench.data.synth.render import Scene, render_scene  # noqa: F401
from ovbench.data.synth.world import (  # noqa: F401
    all_classes,
    dataset_specs,
    held_out_of_pretraining,
    pretraining_classes,
    segmentation_unseen,
)
