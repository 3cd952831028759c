"""ovbench: a benchmarking and ablation harness for open-vocabulary segmentation.

Importing this package (1) applies the stack shims in :mod:`ovbench.compat`
and (2) registers ovbench's datasets, transforms, models and metrics into
MMSegmentation's registries, so a config only needs
``custom_imports = dict(imports=['ovbench'])``. Both are done by :func:`load`.

The one exception is the ``ovbench`` command line (:mod:`ovbench_cli`): loading
torch, mmengine and mmseg takes seconds, and ``ovbench --help`` needs none of
them, so while that entry point imports the package, :func:`load` is deferred
until a command is about to run (:func:`ovbench.cli.main` calls it).
"""
import sys

from ovbench.version import __version__

__all__ = ["__version__", "load"]


def load() -> None:
    """Apply the stack shims, then register ovbench's modules (idempotent).

    The shims must precede any import of torchvision, mmcv or mmseg, which the
    registering subpackages perform.
    """
    from ovbench import compat

    compat.apply()
    from ovbench import data, evaluation, models, peft  # noqa: F401  (registration side effects)

    data.register()


def _deferred() -> bool:
    """True while the command-line entry imports the package: it calls :func:`load` after parsing."""
    entry = sys.modules.get("ovbench_cli")
    return bool(getattr(entry, "DEFER_LOAD", False))


if not _deferred():
    load()
