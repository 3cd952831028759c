"""Per-image evaluation statistics: what every mIoU and PQ figure of a trial is a function of.

A metric adds up per-class counts over images: IoU needs each class's intersection, union,
prediction and label areas (MMSeg's ``IoUMetric``); PQ needs each class's summed IoU of matched
segments, TP, FP and FN (:mod:`ovbench.evaluation.panoptic_quality`). Kept per image, beside a
trial's ``result.json``, they let anyone

* recompute the trial's figures without the model (:meth:`ImageStats.metrics`, exactly: it runs
  the metric's own ``compute_metrics`` on the stored rows, in their order), and
* resample the evaluation set (:meth:`ImageStats.bootstrap`): the image-sampling part of a
  figure's uncertainty, which is what a one-seed study can say about its own noise (issue 19).

File layout (``image_stats.npz``): for each evaluation set and metric, ``<set>/<tag>/values``
(``[images, classes, 4]``) and ``<set>/<tag>/meta`` (JSON: kind, classes, unseen and thing
classes, the metric's arguments). ``tag`` is ``iou`` or ``pq``, followed by ``:<pred_key>`` for
a metric that scores another prediction field (the FISA oracles).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

import numpy as np

#: the file a trial writes beside result.json
STATS_FILE = "image_stats.npz"

#: metric keys :meth:`ImageStats.bootstrap` can resample, by kind
RESAMPLABLE = {
    "iou": ("aAcc", "mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"),
    "pq": ("PQ", "PQ_th", "PQ_st", "PQ_seen", "PQ_unseen"),
}


@dataclass(frozen=True)
class ImageStats:
    """One metric's per-image, per-class counts on one evaluation set.

    Args:
        kind: ``"iou"`` (columns: intersection, union, prediction, label areas) or ``"pq"``
            (columns: summed IoU, TP, FP, FN).
        values: ``[images, classes, 4]`` in evaluation order.
        classes: the set's class names (the metric's ``dataset_meta['classes']``).
        unseen_classes, thing_classes: the metric's split and thing classes (empty if none).
        metric_args: the metric's constructor arguments that change its arithmetic.
    """

    kind: str
    values: np.ndarray
    classes: tuple
    unseen_classes: tuple = ()
    thing_classes: tuple = ()
    metric_args: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_images(self) -> int:
        return int(self.values.shape[0])

    def dataset_meta(self) -> Dict[str, Any]:
        meta: Dict[str, Any] = {"classes": self.classes, "unseen_classes": self.unseen_classes}
        if self.kind == "pq":
            meta["thing_classes"] = self.thing_classes
        return meta

    def metrics(self) -> Dict[str, float]:
        """The figures the metric reported, recomputed by the metric's own ``compute_metrics``."""
        from ovbench.evaluation.ov_iou_metric import OpenVocabIoUMetric
        from ovbench.evaluation.panoptic_quality import PanopticQualityMetric

        if self.kind == "iou":
            import torch

            metric = OpenVocabIoUMetric(**self.metric_args)
            rows = torch.from_numpy(np.ascontiguousarray(self.values))
            results = [tuple(row[:, k] for k in range(4)) for row in rows]
        else:
            metric = PanopticQualityMetric(**self.metric_args)
            results = [(np.nonzero(v.any(1))[0], v[v.any(1)]) for v in self.values]
        metric.dataset_meta = self.dataset_meta()
        return {k: float(v) for k, v in metric.compute_metrics(results).items()}

    def bootstrap(self, key: str, n: int = 1000, seed: int = 0) -> np.ndarray:
        """``n`` values of metric ``key`` (percent), each on a resample of the images with replacement.

        The percentile interval of these values is the evaluation-set sampling uncertainty of the
        figure (Efron's bootstrap): it says how much the figure would move on another draw of
        images from the same world, not how much it moves between training seeds.
        """
        if key not in RESAMPLABLE[self.kind]:
            raise KeyError(f"{self.kind} statistics can resample {RESAMPLABLE[self.kind]}, not '{key}'")
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(self.num_images, np.full(self.num_images, 1.0 / self.num_images), size=n)
        totals = (counts @ self.values.reshape(self.num_images, -1).astype(np.float64)).reshape(n, -1, 4)
        return self._figure(totals, key)

    def figure(self, key: str, images: Optional[np.ndarray] = None) -> float:
        """Metric ``key`` (percent) on the images ``images`` (indices; all by default), vectorised."""
        values = self.values if images is None else self.values[np.asarray(images)]
        return float(self._figure(values.astype(np.float64).sum(0)[None], key)[0])

    def class_values(self, key: str) -> np.ndarray:
        """Per class (percent, NaN where a class never occurs), the values whose mean is ``key`` on
        the whole set: the IoUs of ``mIoU_unseen``'s classes, the PQs of ``PQ_th``'s. Why: a seed
        spread made of independent per-class swings averages out over more classes, a model-wide
        one does not (benchmarks/noise_floor.py tells them apart)."""
        return 100.0 * self._class_scores(self.values.astype(np.float64).sum(0)[None], key)[0]

    def _class_mask(self, key: str) -> np.ndarray:
        unseen = np.array([c in set(self.unseen_classes) for c in self.classes], bool)
        if self.kind == "iou":
            masks = {"mIoU": np.ones_like(unseen), "mIoU_seen": ~unseen, "mIoU_unseen": unseen}
        else:
            things = np.array([c in set(self.thing_classes) for c in self.classes], bool)
            masks = {"PQ": np.ones_like(unseen), "PQ_th": things, "PQ_st": ~things, "PQ_seen": ~unseen,
                     "PQ_unseen": unseen}
        if key not in masks:
            raise KeyError(f"{self.kind} statistics have per-class means {tuple(masks)}, not '{key}'")
        return masks[key]

    def _class_scores(self, totals: np.ndarray, key: str) -> np.ndarray:
        """``totals`` ``[n, classes, 4]`` -> ``[n, classes of key]`` IoU or PQ fractions (NaN: absent)."""
        mask = self._class_mask(key)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "iou":
                return (totals[..., 0] / totals[..., 1])[:, mask]  # NaN where a class never occurs (0 / 0)
            iou, tp, fp, fn = (totals[..., k][:, mask] for k in range(4))
            return np.where(tp + fp + fn > 0, iou / (tp + 0.5 * fp + 0.5 * fn), np.nan)

    def _figure(self, totals: np.ndarray, key: str) -> np.ndarray:
        """``totals`` ``[n, classes, 4]`` -> ``[n]`` values of ``key`` in percent."""
        if self.kind == "iou" and key == "aAcc":
            return 100.0 * totals[..., 0].sum(1) / totals[..., 3].sum(1)
        if self.kind == "iou" and key == "hIoU":
            seen_m, unseen_m = _nanmean(self._class_scores(totals, "mIoU_seen")), _nanmean(
                self._class_scores(totals, "mIoU_unseen"))
            with np.errstate(divide="ignore", invalid="ignore"):
                h = np.where(seen_m + unseen_m == 0, 0.0, 2 * seen_m * unseen_m / (seen_m + unseen_m))
            return 100.0 * h
        return 100.0 * _nanmean(self._class_scores(totals, key))


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row-wise mean over the non-NaN entries; NaN for a row with none."""
    valid = ~np.isnan(values)
    n = valid.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, np.where(valid, values, 0.0).sum(1) / n, np.nan)


def save_image_stats(path: Path, stats: Mapping[str, Mapping[str, ImageStats]]) -> None:
    """Write ``{set: {tag: ImageStats}}`` to one compressed ``.npz``."""
    arrays: Dict[str, np.ndarray] = {}
    for set_name, by_tag in stats.items():
        for tag, s in by_tag.items():
            meta = dict(kind=s.kind, classes=list(s.classes), unseen_classes=list(s.unseen_classes),
                        thing_classes=list(s.thing_classes), metric_args=s.metric_args)
            arrays[f"{set_name}/{tag}/values"] = s.values
            arrays[f"{set_name}/{tag}/meta"] = np.array(json.dumps(meta))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_image_stats(path: Path) -> Dict[str, Dict[str, ImageStats]]:
    """``{set: {tag: ImageStats}}`` from a file :func:`save_image_stats` wrote."""
    out: Dict[str, Dict[str, ImageStats]] = {}
    with np.load(Path(path), allow_pickle=False) as data:
        for key in data.files:
            if not key.endswith("/meta"):
                continue
            set_name, tag, _ = key.rsplit("/", 2)
            meta = json.loads(str(data[key]))
            out.setdefault(set_name, {})[tag] = ImageStats(
                kind=meta["kind"], values=data[f"{set_name}/{tag}/values"], classes=tuple(meta["classes"]),
                unseen_classes=tuple(meta["unseen_classes"]), thing_classes=tuple(meta["thing_classes"]),
                metric_args=dict(meta["metric_args"]))
    return out


def collect(metrics: Iterable[Any]) -> Dict[str, ImageStats]:
    """``{tag: ImageStats}`` of an evaluator's metrics that kept statistics in their last
    ``compute_metrics`` (``image_stats``; ``tag`` is the kind, plus ``:<pred_key>`` for a metric
    that scores another prediction field). Empty on ranks other than 0, which compute nothing."""
    out: Dict[str, ImageStats] = {}
    for metric in metrics:
        stats = getattr(metric, "image_stats", None)
        if stats is not None:
            default = {"iou": "pred_sem_seg", "pq": "pred_panoptic_seg"}[stats.kind]
            key = getattr(metric, "pred_key", default)
            out[stats.kind if key == default else f"{stats.kind}:{key}"] = stats
    return out
