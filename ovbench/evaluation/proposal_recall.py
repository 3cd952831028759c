"""Class-agnostic quality of mask proposals (FISA stage 1: is mask generation the bottleneck?).

``ProposalRecallMetric`` scores what :class:`~ovbench.models.segmentors.MaskProposalSegmentor`
predicts against the segments of ``gt_panoptic_seg`` (docs/fisa.md), ignoring classes.
Ground truth: every non-crowd segment (crowd segments are neither targets nor counted).
The rules are PQ's (Kirillov et al., CVPR 2019; COCO's panopticapi ``pq_compute``), read
class-agnostically, i.e. with every segment in one class:

* IoU: the union leaves out the prediction's pixels on *void* (id 0) only. Pixels on a crowd
  region stay in the union (panopticapi removes only void there), so a proposal that spills
  over a crowd region is penalised like any other spill;
* false positives: a predicted segment more than half on void or on crowd regions is not one
  (panopticapi: void + crowd *of the prediction's class*; class-agnostically every crowd
  region is of that class).

Reported (percent), each also for ``_things`` and ``_stuff`` (the segment's ``isthing``) and,
where ``dataset_meta`` has ``unseen_classes``, ``recall50``/``mBIoU`` also for ``_seen`` and
``_unseen`` (by the segment's category: does the class-agnostic generator find objects of
classes its training set never labelled?):

* ``recall50``: ground-truth segments whose best proposal (over all ``pred_proposals`` with
  score >= ``score_thr``; overlapping, like average recall at N proposals) has IoU > 0.5;
* ``mBIoU``: mean over ground-truth segments of that best IoU;
* from ``pred_agnostic_seg`` (non-overlapping segments, what a panoptic pipeline would keep),
  if present: ``pan_recall50`` (IoU > ``iou_thr`` >= 0.5 matches are unique there, as in PQ),
  ``pan_precision50`` (predicted segments matched, out of those not more than half on
  void/crowd) and ``agnostic_PQ`` = sum IoU(TP) / (TP + FP/2 + FN/2) over all segments;
* ``num_gt`` (segments per image) and ``num_pred`` (panoptic segments per image) as context.

Register it by importing this module (``ovbench.evaluation`` does).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from ovbench.models.heads.mask_matching import panoptic_fields


def _get(sample: dict, key: str):
    value = sample.get(key) if isinstance(sample, dict) else getattr(sample, key, None)
    return value


@METRICS.register_module()
class ProposalRecallMetric(BaseMetric):
    """Recall / mean best IoU of class-agnostic proposals, all / things / stuff.

    Args:
        score_thr: proposals with score below it are left out of ``recall50``/``mBIoU``
            (0: all N queries).
        iou_thr: IoU a match must exceed (0.5, PQ's threshold). Values below 0.5 are refused: a
            segment could then match two predictions and the panoptic counts would not be PQ's.
        collect_device, prefix: as mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, score_thr: float = 0.0, iou_thr: float = 0.5, collect_device: str = "cpu",
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0.5 <= float(iou_thr) < 1.0:
            raise ValueError(f"ProposalRecallMetric.iou_thr: expected 0.5 <= iou_thr < 1 (IoU > 0.5 makes matches "
                             f"unique, as in PQ; below it a segment can match two predictions), got {iou_thr!r}")
        self.score_thr = score_thr
        self.iou_thr = iou_thr

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(self.image_stats(sample))

    def image_stats(self, sample) -> dict:
        """Per-image record: per gt segment (isthing, best proposal IoU, panoptic IoU) and the
        panoptic predictions' counts."""
        ids, infos = panoptic_fields(sample, "gt_panoptic_seg")
        ids = ids.reshape(ids.shape[-2:]).long().cpu()
        crowd_ids = [int(s["id"]) for s in infos if s.get("iscrowd", 0)]
        gts = [s for s in infos if not s.get("iscrowd", 0) and bool((ids == int(s["id"])).any())]
        void = ids == 0
        ignore = void | torch.isin(ids, torch.tensor(crowd_ids, dtype=torch.long))  # void + crowd: the FP rule only
        gt_masks = torch.stack([ids == int(s["id"]) for s in gts]) if gts else torch.zeros((0, *ids.shape), dtype=torch.bool)
        isthing = np.array([bool(s.get("isthing", 0)) for s in gts], dtype=bool)
        category = np.array([int(s.get("category", -1)) for s in gts], dtype=np.int64)

        proposals = _get(sample, "pred_proposals")
        if proposals is None:
            raise KeyError("ProposalRecallMetric: sample has no 'pred_proposals' (masks [N, H, W] bool + scores [N]); "
                           "MaskProposalSegmentor.predict writes it")
        masks = torch.as_tensor(_get(proposals, "masks")).bool().cpu()
        scores = torch.as_tensor(_get(proposals, "scores")).float().cpu()
        if masks.shape[-2:] != ids.shape:
            raise ValueError(f"ProposalRecallMetric: proposal masks {tuple(masks.shape)} and gt_panoptic_seg "
                             f"{tuple(ids.shape)} differ in size")
        masks = masks[scores >= self.score_thr]
        best = _iou(masks, gt_masks, void).max(0).values.numpy() if len(masks) else np.zeros(len(gts))
        record = dict(isthing=isthing, category=category, best_iou=best)

        agnostic = _get(sample, "pred_agnostic_seg")
        if agnostic is not None:
            pan = torch.as_tensor(_get(agnostic, "data")).reshape(ids.shape).long().cpu()
            seg_ids = [int(v) for v in torch.unique(pan) if v != 0]
            pred = torch.stack([pan == v for v in seg_ids]) if seg_ids else torch.zeros((0, *ids.shape), dtype=torch.bool)
            iou = _iou(pred, gt_masks, void)
            pan_best = iou.max(0).values.numpy() if len(pred) else np.zeros(len(gts))
            # a prediction more than half on void/crowd is not a false positive (as in PQ)
            on_ignore = (pred & ignore).flatten(1).sum(1).float() / pred.flatten(1).sum(1).clamp(min=1).float()
            matched = (iou > self.iou_thr).any(1) if len(gts) else torch.zeros(len(pred), dtype=torch.bool)
            record.update(pan_iou=pan_best, num_pred=len(seg_ids), tp_pred=int(matched.sum()),
                          fp=int((~matched & (on_ignore <= 0.5)).sum()))
        return record

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        isthing = np.concatenate([r["isthing"] for r in results]) if results else np.zeros(0, bool)
        best = np.concatenate([r["best_iou"] for r in results]) if results else np.zeros(0)
        metrics: Dict[str, float] = {}
        groups = {"": np.ones_like(isthing), "_things": isthing, "_stuff": ~isthing}
        for suffix, sel in groups.items():
            metrics[f"recall50{suffix}"] = _pct(np.mean(best[sel] > self.iou_thr)) if sel.any() else float("nan")
            metrics[f"mBIoU{suffix}"] = _pct(np.mean(best[sel])) if sel.any() else float("nan")
        meta = self.dataset_meta or {}
        unseen = set(meta.get("unseen_classes") or ())
        if unseen and meta.get("classes"):
            category = np.concatenate([r["category"] for r in results])
            unseen_idx = [i for i, c in enumerate(meta["classes"]) if c in unseen]
            is_unseen = np.isin(category, unseen_idx)
            for suffix, sel in {"_seen": ~is_unseen, "_unseen": is_unseen}.items():
                metrics[f"recall50{suffix}"] = _pct(np.mean(best[sel] > self.iou_thr)) if sel.any() else float("nan")
                metrics[f"mBIoU{suffix}"] = _pct(np.mean(best[sel])) if sel.any() else float("nan")
        metrics["num_gt"] = round(len(best) / max(len(results), 1), 2)
        if results and all("pan_iou" in r for r in results):
            pan = np.concatenate([r["pan_iou"] for r in results])
            for suffix, sel in groups.items():
                metrics[f"pan_recall50{suffix}"] = _pct(np.mean(pan[sel] > self.iou_thr)) if sel.any() else float("nan")
            tp = int((pan > self.iou_thr).sum())
            fn = len(pan) - tp
            fp = sum(r["fp"] for r in results)
            counted = sum(r["tp_pred"] + r["fp"] for r in results)
            metrics["pan_precision50"] = _pct(sum(r["tp_pred"] for r in results) / counted) if counted else float("nan")
            denom = tp + 0.5 * fp + 0.5 * fn
            metrics["agnostic_PQ"] = _pct(pan[pan > self.iou_thr].sum() / denom) if denom else float("nan")
            metrics["num_pred"] = round(sum(r["num_pred"] for r in results) / len(results), 2)
        return metrics


def _iou(pred: torch.Tensor, gt: torch.Tensor, void: torch.Tensor) -> torch.Tensor:
    """``[P, G]`` IoU; the prediction's pixels on ``void`` count in neither intersection nor union (PQ)."""
    if len(pred) == 0 or len(gt) == 0:
        return torch.zeros(len(pred), len(gt))
    p = (pred & ~void).flatten(1).float()
    g = gt.flatten(1).float()
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def _pct(x: float) -> float:
    return round(float(x) * 100, 2)
