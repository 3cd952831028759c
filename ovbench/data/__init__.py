"""Data layer: real dataset layouts, vocabularies, transforms, the synthetic world.

The names below are imported on first use (PEP 562), not with the package:
``ovbench data synth --help`` and the synthetic world need numpy only, while
the dataset classes import mmseg. :func:`register` imports every module that
registers into mmseg's registries; :func:`ovbench.load` calls it.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict

#: exported name -> module of this package that defines it
_EXPORTS: Dict[str, str] = {
    "OVSegDataset": "ov_dataset",
    "load_vocabulary": "ov_dataset",
    "shipped_vocabularies": "ov_dataset",
    "ADE20K847Dataset": "ov_benchmarks",
    "PascalContext459Dataset": "ov_benchmarks",
    "PascalVOC20bDataset": "ov_benchmarks",
    "PascalVOC20Dataset": "ov_benchmarks",
    "LoadWideAnnotations": "transforms",
    "ADE20KPanopticDataset": "panoptic",
    "CityscapesPanopticDataset": "panoptic",
    "COCOPanopticDataset": "panoptic",
    "OVPanopticDataset": "panoptic",
    "LoadPanopticAnnotations": "panoptic_transforms",
    "PackPanopticInputs": "panoptic_transforms",
}

__all__ = sorted(_EXPORTS) + ["register"]


def register() -> None:
    """Import every module that registers datasets and transforms (needs the shims applied)."""
    for module in sorted(set(_EXPORTS.values())):
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
