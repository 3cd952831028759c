"""Named evaluation / training datasets an ablation file may refer to.

An ablation names datasets (``datasets: [toy]``), never paths, so one file runs
on any machine: the name resolves here to a data root, generated on first use
when the dataset is synthetic: ``toy`` (the 3-class shapes set of
:mod:`ovbench.data.toy`, under ``$OVBENCH_DATA_DIR``) and the embedded synthetic
benchmark (``ovbench.data.synth``, in ovbench's cache).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from ovbench.data.toy import TOY_VERSION, write_toy_dataset


@dataclass(frozen=True)
class DatasetEntry:
    """How to find (or make) one named dataset and which vocabulary file it uses."""

    name: str
    description: str
    make: Optional[Callable[[Path], None]]  # writes the dataset into an empty dir; None = must exist
    locate: Optional[Callable[[], Path]] = None  # for sets another module caches (the synth benchmark)
    vocabulary: str = "vocabulary.json"
    train_prefix: tuple = ("img_dir/train", "ann_dir/train")
    val_prefix: tuple = ("img_dir/val", "ann_dir/val")
    version: int = 1  # a generated set whose generator changes gets a new folder, never a stale copy

    @property
    def dirname(self) -> str:
        return self.name if self.version == 1 else f"{self.name}-v{self.version}"


def _synth(name: str) -> Callable[[], Path]:
    def locate() -> Path:
        """The embedded benchmark (generated once into ovbench's cache by ``ovbench.data.synth``)."""
        from ovbench.data.synth.writers import ensure_synth_benchmark

        return Path(ensure_synth_benchmark()) / name

    return locate


REGISTRY: Dict[str, DatasetEntry] = {
    "toy": DatasetEntry("toy", "3-class shapes (16 train / 16 val, 64 px), generated", write_toy_dataset,
                        version=TOY_VERSION),
    **{n: DatasetEntry(n, f"embedded synthetic benchmark: {n} (ovbench.data.synth)", None, locate=_synth(n))
       for n in ("synth_train", "synth_large", "synth_medium_shift", "synth_small")},
}


def data_dir() -> Path:
    """Where named datasets live: ``$OVBENCH_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("OVBENCH_DATA_DIR", "data")).resolve()


def resolve(name: str, base: Optional[Path] = None) -> Path:
    """The data root of ``name``, generating it atomically (tmp dir + rename) if it is synthetic.

    Atomic so that two sweeps starting together never see a half-written set.
    """
    entry = REGISTRY[name]
    if entry.locate is not None and base is None:
        return entry.locate()
    root = (base or data_dir()) / entry.dirname
    if (root / entry.vocabulary).is_file():
        return root
    if entry.make is None:
        raise FileNotFoundError(f"dataset {name!r} not found at {root} (no generator; prepare it first)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root.parent))
    try:
        entry.make(tmp)
        try:
            os.rename(tmp, root)
        except OSError:  # another process won the race; its copy is identical
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
