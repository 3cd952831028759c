"""A 3-class toy dataset that any model learns in seconds: for tests, smoke runs and CI.

Red squares and blue discs on noisy grey, written in MMSeg's
``img_dir/<split>`` + ``ann_dir/<split>`` layout with a ``vocabulary.json``
(``'blue disc'`` is declared unseen so the seen/unseen metric has a split).
Deterministic in ``seed``. The embedded open-vocabulary benchmark is the
synthetic world (``ovbench.data.synth``); this set only proves the plumbing.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TOY_CLASSES = ("background", "red square", "blue disc")


def write_toy_dataset(root: Path, n_train: int = 8, n_val: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write the toy set under ``root`` and return ``root``."""
    from PIL import Image

    root = Path(root)
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
        json.dumps({"name": "toy", "classes": list(TOY_CLASSES), "unseen": ["blue disc"]})
    )
    return root
