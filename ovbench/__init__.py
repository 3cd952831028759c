"""ovbench: a benchmarking and ablation harness for open-vocabulary segmentation.

Importing this package (1) applies the stack shims in :mod:`ovbench.compat`
and (2) registers ovbench's datasets, transforms, models and metrics into
MMSegmentation's registries, so a config only needs
``custom_imports = dict(imports=['ovbench'])``.
"""
from ovbench import compat as _compat

_compat.apply()

from ovbench.version import __version__  # noqa: E402

from ovbench import data, evaluation, models, peft  # noqa: E402,F401  (registration side effects)

__all__ = ["__version__"]
