"""Shared fixtures. ``import ovbench`` first: it applies the stack shims."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import ovbench  # noqa: F401  (must precede torchvision / mmseg imports)

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO_ROOT / "configs" / "smoke" / "tiny_fcn.py"
TOY_CLASSES = ["background", "red square", "blue disc"]


def write_toy_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A 3-class MMSeg-layout dataset (OVSegDataset + vocabulary.json) a model can learn in seconds.

    Red squares and blue discs on a noisy grey background; the label PNG holds
    class ids (0 background, 1 square, 2 disc). 'blue disc' is declared unseen
    so the seen/unseen metric has something to split.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "img_dir" / split).mkdir(parents=True, exist_ok=True)
        (root / "ann_dir" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = (rng.normal(128, 20, (size, size, 3))).clip(0, 255)
            label = np.zeros((size, size), np.uint8)
            for cls in (1, 2):
                cy, cx = rng.integers(size // 6, size - size // 6, 2)
                r = int(rng.integers(size // 10, size // 5))
                mask = (
                    (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
                    if cls == 1
                    else (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                )
                img[mask] = (220, 40, 40) if cls == 1 else (40, 60, 220)
                label[mask] = cls
            Image.fromarray(img.astype(np.uint8)).save(root / "img_dir" / split / f"{i:04d}.png")
            Image.fromarray(label).save(root / "ann_dir" / split / f"{i:04d}.png")
    (root / "vocabulary.json").write_text(
        json.dumps({"name": "toy", "classes": TOY_CLASSES, "unseen": ["blue disc"]})
    )
    return root


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    """A session-wide toy dataset root (read-only by convention)."""
    return write_toy_dataset(tmp_path_factory.mktemp("toy_data"))


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    # Tests share 2 cores; deterministic thread count keeps timings sane.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
