"""mIoU with the open-vocabulary split: seen, unseen and their harmonic mean.

The IoU arithmetic is MMSeg's :class:`~mmseg.evaluation.IoUMetric` (areas
summed over the dataset, IoU per class, NaN classes skipped); this subclass only
groups its per-class IoU by the dataset's ``unseen_classes`` metainfo.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from ovbench.evaluation.image_stats import ImageStats


def harmonic_mean(a: float, b: float) -> float:
    """hIoU of Xian et al. / ZS3Net; NaN when either side is undefined, 0 when both are 0."""
    if np.isnan(a) or np.isnan(b):
        return float("nan")
    return 0.0 if a + b == 0 else float(2 * a * b / (a + b))


@METRICS.register_module()
class OpenVocabIoUMetric(IoUMetric):
    """IoUMetric that also reports ``mIoU_seen``, ``mIoU_unseen`` and ``hIoU`` (percent).

    The split comes from ``dataset_meta['unseen_classes']`` (set by
    :class:`ovbench.data.OVSegDataset` from its vocabulary file). Without a
    split only IoUMetric's keys are returned. ``per_class`` additionally returns
    ``IoU.<class name>``, which the sweep layer stores for reports.
    ``pred_key`` names the prediction field (``pred_sem_seg_oracle_masks`` etc.,
    docs/fisa.md), so one test run scores several predictions of a sample.
    """

    def __init__(self, per_class: bool = False, ignore_index: Optional[int] = None,
                 pred_key: str = "pred_sem_seg", **kwargs) -> None:
        kwargs.setdefault("iou_metrics", ["mIoU"])
        super().__init__(ignore_index=255 if ignore_index is None else ignore_index, **kwargs)
        self.per_class = per_class
        self.pred_key = pred_key
        # None: follow the dataset (metainfo 'ignore_index', e.g. 65535 for 16-bit label sets).
        self._ignore_from_dataset = ignore_index is None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if self._ignore_from_dataset and self.dataset_meta:
            self.ignore_index = int(self.dataset_meta.get("ignore_index", 255))
        if self.pred_key != "pred_sem_seg":
            missing = [i for i, s in enumerate(data_samples) if self.pred_key not in s]
            if missing:
                raise KeyError(f"OpenVocabIoUMetric: data sample {missing[0]} has no '{self.pred_key}' "
                               f"(it has {sorted(data_samples[missing[0]])})")
            data_samples = [dict(s, pred_sem_seg=s[self.pred_key]) for s in data_samples]
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        self.image_stats = self._image_stats(results)
        metrics = super().compute_metrics(results)
        per_class_iou = self.per_class_iou(results)
        classes: Sequence[str] = self.dataset_meta["classes"]
        unseen = set(self.dataset_meta.get("unseen_classes") or ())
        if unseen:
            seen_idx = [i for i, c in enumerate(classes) if c not in unseen]
            unseen_idx = [i for i, c in enumerate(classes) if c in unseen]
            m_seen = _nanmean_percent(per_class_iou[seen_idx])
            m_unseen = _nanmean_percent(per_class_iou[unseen_idx])
            metrics.update(mIoU_seen=m_seen, mIoU_unseen=m_unseen, hIoU=round(harmonic_mean(m_seen, m_unseen), 2))
        if self.per_class:
            metrics.update({f"IoU.{c}": round(float(v) * 100, 2) for c, v in zip(classes, per_class_iou)})
        return metrics

    def _image_stats(self, results: List[tuple]) -> ImageStats:
        """Each image's four per-class areas, as :mod:`ovbench.evaluation.image_stats` stores them."""
        classes = tuple(self.dataset_meta["classes"])
        values = np.stack([np.stack([np.asarray(a) for a in r], 1) for r in results]) if results else \
            np.zeros((0, len(classes), 4), np.float32)
        return ImageStats("iou", values, classes, tuple(self.dataset_meta.get("unseen_classes") or ()),
                          metric_args=dict(iou_metrics=list(self.metrics), nan_to_num=self.nan_to_num, beta=self.beta))

    def per_class_iou(self, results: List[tuple]) -> np.ndarray:
        """Per-class IoU in [0, 1] (NaN where a class never occurs), via IoUMetric's arithmetic."""
        area_intersect, area_union, area_pred, area_label = (sum(r) for r in zip(*results))
        ret = self.total_area_to_metrics(
            area_intersect, area_union, area_pred, area_label, ["mIoU"], None, self.beta
        )
        return np.asarray(ret["IoU"], dtype=np.float64)


def _nanmean_percent(values: np.ndarray) -> float:
    if values.size == 0 or np.all(np.isnan(values)):
        return float("nan")
    return round(float(np.nanmean(values)) * 100, 2)
