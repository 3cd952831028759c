"""Qualitative panels: for a few fixed images of each evaluation set, image | ground truth | each
setting's prediction side by side (one PNG per study and set). Trials save the predictions
(``preds/<set>/NNN.png`` in their work dir); this only lays them out."""
from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd


def palette(n: int) -> np.ndarray:
    """Distinct deterministic colours (golden-ratio hues); index 255 (ignore) is black."""
    colours = np.zeros((256, 3), np.uint8)
    for i in range(min(n, 255)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
        colours[i] = (int(r * 255), int(g * 255), int(b * 255))
    return colours


def _load(path: str, colours: np.ndarray = None) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(Image.open(path))
    return colours[arr] if colours is not None else arr


def panel(df: pd.DataFrame, out_dir: Path) -> List[Path]:
    """One PNG per evaluation set: rows = fixed images, columns = image, GT, one per setting (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if df.empty or "predictions" not in df:
        return []
    done = df[(df["state"] == "COMPLETE") & df["predictions"].map(lambda p: isinstance(p, dict) and "error" not in p)]
    done = done.sort_values("seed").drop_duplicates("setting", keep="first")
    if done.empty:
        return []
    files = []
    sets: Dict[str, list] = done.iloc[0]["predictions"]
    colours = palette(256)
    for name, entries in sets.items():
        rows, cols = len(entries), 2 + len(done)
        if rows == 0:
            continue
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
        for r, entry in enumerate(entries):
            gt = entry.get("gt") or entry["seg_map_path"]  # "gt": the semantic map a panoptic set derives
            images = [("image", _load(entry["img_path"])), ("ground truth", _load(gt, colours))]
            for _, trial in done.iterrows():
                preds = trial["predictions"].get(name) or []
                img = _load(preds[r]["pred"], colours) if r < len(preds) and Path(preds[r]["pred"]).is_file() else None
                images.append((str(trial["setting"]), img))
            for c, (title, img) in enumerate(images):
                ax = axes[r][c]
                ax.axis("off")
                if img is not None:
                    ax.imshow(img)
                if r == 0:
                    ax.set_title(title, fontsize=6)
        fig.tight_layout()
        path = out_dir / f"panel_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files
