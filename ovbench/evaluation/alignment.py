"""Image-text alignment diagnostic (asked for by the H-CLIP reviewers).

How well do pixel embeddings align with their true class's text embedding, and
by how much do they beat the best wrong class? Reported per evaluation set,
split seen/unseen, next to mIoU, so a sweep can plot one against the other.

The model computes per-image, per-class sums (``alignment`` in each data
sample, see ``OVCostAggSegmentor(alignment=True)``); this metric adds them over
the dataset and averages per class, then over classes (macro, like mIoU).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class AlignmentMetric(BaseMetric):
    """``align_cos`` (mean cosine to the true class) and ``align_margin`` (true minus best wrong),
    for all classes and, where the dataset declares a split, ``_seen`` / ``_unseen``."""

    default_prefix = ""

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            stats = sample.get("alignment")
            if stats is None:
                raise KeyError(
                    "AlignmentMetric: data samples carry no 'alignment' statistics; build the segmentor with "
                    "alignment=True (OVCostAggSegmentor) so that predict() records them"
                )
            self.results.append({k: np.asarray(v, dtype=np.float64) for k, v in stats.items()})

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        total = {k: sum(r[k] for r in results) for k in ("sum_cos", "sum_margin", "count")}
        count = total["count"]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(count > 0, total["sum_cos"] / count, np.nan)
            margin = np.where(count > 0, total["sum_margin"] / count, np.nan)
        classes = list(self.dataset_meta.get("classes", range(len(count))))
        unseen = set(self.dataset_meta.get("unseen_classes") or ())
        groups = {"": list(range(len(classes)))}
        if unseen:
            groups["_seen"] = [i for i, c in enumerate(classes) if c not in unseen]
            groups["_unseen"] = [i for i, c in enumerate(classes) if c in unseen]
        out: Dict[str, float] = {}
        for suffix, idx in groups.items():
            out[f"align_cos{suffix}"] = _nanmean(cos[idx])
            out[f"align_margin{suffix}"] = _nanmean(margin[idx])
        return out


def _nanmean(values: np.ndarray) -> float:
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return round(float(np.nanmean(values)), 4)
