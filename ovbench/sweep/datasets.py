"""Named evaluation / training datasets an ablation file may refer to.

An ablation names datasets (``datasets: [toy]``), never paths, so one file runs
on any machine: the name resolves here to a data root, generated on first use
when the dataset is synthetic. ``toy`` is the only one that exists today (a
3-class shapes set, the same recipe as ``tests/conftest.py``); the embedded
synthetic benchmark (issue 3) and real layouts register here when they land.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

TOY_CLASSES = ["background", "red square", "blue disc"]


@dataclass(frozen=True)
class DatasetEntry:
    """How to find (or make) one named dataset and which vocabulary file it uses."""

    name: str
    description: str
    make: Optional[Callable[[Path], None]]  # writes the dataset into an empty dir; None = must exist
    vocabulary: str = "vocabulary.json"
    train_prefix: tuple = ("img_dir/train", "ann_dir/train")
    val_prefix: tuple = ("img_dir/val", "ann_dir/val")


def write_toy(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64, seed: int = 0) -> None:
    """Red squares and blue discs on noisy grey; 'blue disc' is unseen (deterministic in ``seed``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "img_dir" / split).mkdir(parents=True, exist_ok=True)
        (root / "ann_dir" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.normal(128, 20, (size, size, 3)).clip(0, 255)
            label = np.zeros((size, size), np.uint8)
            for cls in (1, 2):
                cy, cx = rng.integers(size // 6, size - size // 6, 2)
                r = int(rng.integers(size // 10, size // 5))
                if cls == 1:
                    mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
                else:
                    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                img[mask] = (220, 40, 40) if cls == 1 else (40, 60, 220)
                label[mask] = cls
            Image.fromarray(img.astype(np.uint8)).save(root / "img_dir" / split / f"{i:04d}.png")
            Image.fromarray(label).save(root / "ann_dir" / split / f"{i:04d}.png")
    (root / "vocabulary.json").write_text(
        json.dumps({"name": "toy", "classes": TOY_CLASSES, "unseen": ["blue disc"]})
    )


REGISTRY: Dict[str, DatasetEntry] = {
    "toy": DatasetEntry("toy", "3-class shapes (8 train / 4 val, 64 px), generated", write_toy),
}


def data_dir() -> Path:
    """Where named datasets live: ``$OVBENCH_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("OVBENCH_DATA_DIR", "data")).resolve()


def resolve(name: str, base: Optional[Path] = None) -> Path:
    """The data root of ``name``, generating it atomically (tmp dir + rename) if it is synthetic.

    Atomic so that two sweeps starting together never see a half-written set.
    """
    entry = REGISTRY[name]
    root = (base or data_dir()) / name
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
