"""Panoptic quality (PQ) of Kirillov et al., "Panoptic Segmentation" (CVPR 2019).

The arithmetic is that of COCO's ``panopticapi`` (``pq_compute_single_core``
and ``PQStat.pq_average``), vectorised: per image, one ``np.unique`` of the
combined key ``gt id << 31 | pred id`` gives every non-empty intersection, and
the matching, false negatives and false positives are array operations on the
small (gt segments x predicted segments) matrix. Semantics, per image:

* a gt segment and a predicted segment **match** when they have the same
  category, the gt segment is not crowd and ``IoU > 0.5``, where the union
  leaves out the prediction's pixels on void (gt id 0): ``|g| + |p| - |g & p|
  - |p & void|``. IoU > 0.5 makes matches unique;
* unmatched non-crowd gt segments are false negatives; crowd segments are
  never matched nor counted;
* an unmatched prediction is a false positive unless more than half of it
  lies on void plus the crowd segment of its own category (panopticapi keeps
  one crowd segment per category and image: the last one listed);
* per class ``PQ = sum IoU / (TP + FP/2 + FN/2)``, ``SQ = sum IoU / TP`` (0
  without TP), ``RQ = TP / (TP + FP/2 + FN/2)``; classes with ``TP + FP + FN
  = 0`` are left out of the averages (NaN in the per-class table).

Deviations (input checks, not arithmetic): a segment listed in
``segments_info`` but absent from the map is ignored (panopticapi raises for
predictions and reads gt areas from its JSON); ids must be unique and in
``[1, 2^31)``, maps integer, categories within the vocabulary, every non-zero id in a map listed --
violations raise ``ValueError`` naming the image and the segment.
"""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from ovbench.evaluation.image_stats import ImageStats

#: columns of a per-class statistics array
IOU, TP, FP, FN = 0, 1, 2, 3
_SHIFT = 31  # joint key = gt id << 31 | pred id (int64)
_MAX_ID = 1 << _SHIFT


def _segment_table(segments: Sequence[Mapping[str, Any]], num_classes: int, what: str, source: str,
                   with_crowd: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, categories, iscrowd) arrays of one ``segments_info`` list, validated."""
    n = len(segments)
    ids = np.empty(n, np.int64)
    cats = np.empty(n, np.int64)
    crowd = np.zeros(n, bool)
    for k, s in enumerate(segments):
        try:
            ids[k] = int(s["id"])
            cats[k] = int(s["category"])
        except KeyError as e:
            raise ValueError(f"{source}: {what} segments_info[{k}] = {dict(s)} lacks {e}; expected "
                             "{'id': int > 0, 'category': 0-based class index, 'iscrowd': 0|1 (gt)}") from None
        if with_crowd:
            crowd[k] = bool(int(s.get("iscrowd", 0)))
    if n:
        if ids.min() <= 0:
            raise ValueError(f"{source}: {what} segment id {int(ids.min())} in segments_info; ids must be > 0 "
                             "(0 is void)")
        if len(np.unique(ids)) != n:
            u, c = np.unique(ids, return_counts=True)
            raise ValueError(f"{source}: {what} segments_info lists id(s) {u[c > 1][:5].tolist()} more than once")
        bad = (cats < 0) | (cats >= num_classes)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{source}: {what} segment {int(ids[k])} has category {int(cats[k])}, outside the "
                             f"vocabulary (0..{num_classes - 1})")
    return ids, cats, crowd


def _lookup(values: np.ndarray, seg_ids: np.ndarray, what: str, source: str) -> np.ndarray:
    """Segment ids (a few, from the joint histogram) -> 1 + position in ``seg_ids``; 0 = void."""
    listed = sorted(seg_ids.tolist())[:10]
    if len(seg_ids) == 0:
        seg_ids = np.zeros(1, np.int64)  # a placeholder that only void (0) can hit, and void maps to 0 anyway
    order = np.argsort(seg_ids, kind="stable")
    sorted_ids = seg_ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    found = (sorted_ids[pos] == values) & (values != 0)
    unlisted = ~found & (values != 0)
    if unlisted.any():
        raise ValueError(f"{source}: {what} map holds segment id(s) {values[unlisted][:5].tolist()} with no "
                         f"segments_info entry (listed: {listed})")
    return np.where(found, order[pos] + 1, 0)


def _check_range(ids: np.ndarray, what: str, source: str) -> None:
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= _MAX_ID):
        raise ValueError(f"{source}: {what} map holds id {int(ids.min())} or {int(ids.max())}; ids must lie in "
                         "[0, 2^31) (0 = void)")


def pq_image_stats(gt_ids: np.ndarray, gt_segments: Sequence[Mapping[str, Any]], pred_ids: np.ndarray,
                   pred_segments: Sequence[Mapping[str, Any]], num_classes: int,
                   source: str = "<image>") -> np.ndarray:
    """Per-class ``[num_classes, 4]`` array of (sum IoU, TP, FP, FN) for one image.

    ``*_ids``: integer segment-id maps of one shape, 0 = void. ``*_segments``:
    ``{'id', 'category' (0-based), 'iscrowd' (gt)}`` entries. See the module
    docstring for the semantics (panopticapi's).
    """
    gt_ids = np.asarray(gt_ids)
    pred_ids = np.asarray(pred_ids)
    if gt_ids.shape != pred_ids.shape:
        raise ValueError(f"{source}: gt map {gt_ids.shape} and prediction map {pred_ids.shape} differ in shape")
    g_id, g_cat, g_crowd = _segment_table(gt_segments, num_classes, "gt", source, with_crowd=True)
    p_id, p_cat, _ = _segment_table(pred_segments, num_classes, "prediction", source, with_crowd=False)
    for what, ids in (("gt", gt_ids), ("prediction", pred_ids)):
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{source}: {what} map must hold integer segment ids, got dtype {ids.dtype}")
    g = gt_ids.reshape(-1).astype(np.int64, copy=False)
    p = pred_ids.reshape(-1).astype(np.int64, copy=False)
    _check_range(g, "gt", source)
    _check_range(p, "prediction", source)
    # joint histogram of (gt id, pred id) pairs: one sort of the combined key, then only the pairs that occur
    keys, pixels = np.unique((g << _SHIFT) | p, return_counts=True)
    kp = keys & (_MAX_ID - 1)
    gi = _lookup(keys >> _SHIFT, g_id, "gt", source)
    pj = _lookup(kp, p_id, "prediction", source)
    ng, np_ = len(g_id) + 1, len(p_id) + 1
    counts = np.zeros((ng, np_), np.int64)
    counts[gi, pj] = pixels
    inter = counts[1:, 1:]
    gt_area = counts[1:].sum(1)
    pred_area = counts[:, 1:].sum(0)
    pred_void = counts[0, 1:]

    stats = np.zeros((num_classes, 4), np.float64)
    # matches: same category, gt not crowd, IoU > 0.5 with the prediction's void pixels left out of the union
    cand = (g_cat[:, None] == p_cat[None, :]) & ~g_crowd[:, None] & (inter > 0)
    union = gt_area[:, None] + pred_area[None, :] - inter - pred_void[None, :]
    iou = np.where(cand, inter / np.maximum(union, 1), 0.0)
    gm, pm = np.nonzero(iou > 0.5)
    stats[:, IOU] = np.bincount(g_cat[gm], weights=iou[gm, pm], minlength=num_classes)
    stats[:, TP] = np.bincount(g_cat[gm], minlength=num_classes)
    g_matched = np.zeros(len(g_id), bool)
    g_matched[gm] = True
    p_matched = np.zeros(len(p_id), bool)
    p_matched[pm] = True
    fn = (gt_area > 0) & ~g_matched & ~g_crowd
    stats[:, FN] = np.bincount(g_cat[fn], minlength=num_classes)
    # the crowd segment of each category: the last one listed (panopticapi's dict overwrite)
    on_crowd = np.zeros(len(p_id), np.int64)
    crowd_of = {}
    for k in np.nonzero(g_crowd)[0].tolist():  # in listed order, so the last one listed wins
        crowd_of[int(g_cat[k])] = k
    if crowd_of:
        rows = np.array([crowd_of.get(int(c), -1) for c in p_cat], np.int64)
        hit = rows >= 0
        on_crowd[hit] = inter[rows[hit], np.nonzero(hit)[0]]
    ignored = (pred_void + on_crowd) / np.maximum(pred_area, 1) > 0.5
    fp = (pred_area > 0) & ~p_matched & ~ignored
    stats[:, FP] = np.bincount(p_cat[fp], minlength=num_classes)
    return stats


def pq_per_class(stats: np.ndarray) -> Dict[str, np.ndarray]:
    """PQ, SQ, RQ per class in [0, 1]; NaN where ``TP + FP + FN == 0``."""
    iou, tp, fp, fn = (stats[:, k] for k in (IOU, TP, FP, FN))
    denom = tp + 0.5 * fp + 0.5 * fn
    valid = (tp + fp + fn) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pq = np.where(valid, iou / denom, np.nan)
        sq = np.where(valid, np.where(tp > 0, iou / np.maximum(tp, 1), 0.0), np.nan)
        rq = np.where(valid, tp / denom, np.nan)
    return dict(pq=pq, sq=sq, rq=rq)


def pq_average(stats: np.ndarray, mask: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Mean PQ/SQ/RQ (in [0, 1]) over the classes in ``mask`` that occur; NaN if none does."""
    per = pq_per_class(stats)
    valid = ~np.isnan(per["pq"])
    if mask is not None:
        valid &= np.asarray(mask, bool)
    n = int(valid.sum())
    out = {k: (float(v[valid].sum() / n) if n else float("nan")) for k, v in per.items()}
    out["n"] = n
    return out


# --- COCO panoptic files (the format panopticapi reads) -----------------------------------------------

def read_panoptic_png(path: str) -> np.ndarray:
    """Decode a COCO panoptic PNG into ids (``R + 256 G + 256^2 B``); single-channel PNGs are ids already."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGB", "RGBA", "P"):
            # RGBA bytes read as little-endian uint32 are R + 256 G + 256^2 B + 256^3 A: one C-level pass
            return np.asarray(im.convert("RGBA")).view("<u4")[..., 0] & 0xFFFFFF
        return np.asarray(im).astype(np.int64)


def pq_stats_from_files(pairs: Sequence[Tuple[dict, dict]], gt_folder: str, pred_folder: str,
                        categories: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Summed (sum IoU, TP, FP, FN) per category over COCO panoptic (gt, prediction) annotation pairs.

    ``categories``: the gt JSON's ``categories``; row ``k`` of the result is the
    ``k``-th category in ascending id order. Inputs as for panopticapi's
    ``pq_compute_single_core``; ``segments_info`` use ``category_id``.
    """
    cat_ids = sorted(int(c["id"]) for c in categories)
    index = {c: k for k, c in enumerate(cat_ids)}
    total = np.zeros((len(cat_ids), 4), np.float64)

    def convert(segments, source):
        out = []
        for s in segments:
            if s["category_id"] not in index:
                raise ValueError(f"{source}: segment {s['id']} has unknown category_id {s['category_id']}")
            out.append({"id": s["id"], "category": index[s["category_id"]], "iscrowd": s.get("iscrowd", 0)})
        return out

    for gt_ann, pred_ann in pairs:
        src = f"image {gt_ann.get('image_id')} ({gt_ann['file_name']})"
        gt = read_panoptic_png(osp.join(gt_folder, gt_ann["file_name"]))
        pred = read_panoptic_png(osp.join(pred_folder, pred_ann["file_name"]))
        total += pq_image_stats(gt, convert(gt_ann["segments_info"], src), pred,
                                convert(pred_ann["segments_info"], src), len(cat_ids), src)
    return total


# --- the mmengine metric ----------------------------------------------------------------------------

def _pixel_field(sample: Any, key: str) -> Tuple[np.ndarray, List[dict]]:
    """(H x W id map, segments_info) of ``sample[key]``: a dict (mmengine's to_dict) or a PixelData."""
    value = sample.get(key) if isinstance(sample, dict) else getattr(sample, key, None)
    if value is None:
        keys = sorted(sample.keys()) if isinstance(sample, dict) else sorted(sample.keys())
        raise KeyError(
            f"PanopticQualityMetric: the data sample has no '{key}' (it has {keys}). The panoptic ground truth "
            "is packed by PackPanopticInputs; panoptic predictions come from a mask-classification segmentor "
            "(docs/fisa.md)."
        )
    if isinstance(value, dict):
        data, segments = value.get("data"), value.get("segments_info")
    else:
        data, segments = getattr(value, "data", None), value.metainfo.get("segments_info")
    if data is None or segments is None:
        raise ValueError(f"PanopticQualityMetric: '{key}' needs 'data' (id map, 0 = void) and metainfo "
                         "'segments_info' ([{'id', 'category', ...}])")
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f"PanopticQualityMetric: '{key}' data must be [1, H, W] or [H, W], got {data.shape}")
    return data, list(segments)


@METRICS.register_module()
class PanopticQualityMetric(BaseMetric):
    """PQ, SQ, RQ (percent) over all, thing and stuff classes, and PQ over seen and unseen classes.

    Keys: ``PQ SQ RQ``, ``PQ_th SQ_th RQ_th``, ``PQ_st SQ_st RQ_st``, and with a
    seen/unseen split (``dataset_meta['unseen_classes']``) ``PQ_seen
    PQ_unseen`` -- the open-vocabulary question: does panoptic quality hold on
    classes never labelled in training? ``per_class`` adds ``PQ.<class>``.
    Things are ``dataset_meta['thing_classes']``, which is required: the gt
    segments' ``isthing`` flags alone would count a thing class that occurs
    only in predictions (all false positives) as stuff. ``OVPanopticDataset``
    sets it from the vocabulary's ``things`` or the annotation file's category
    table. Each process() step keeps only the per-class (sum IoU, TP, FP, FN)
    of the classes an image touches.

    Args:
        pred_key: data-sample field holding the prediction (``pred_panoptic_seg``,
            or ``pred_panoptic_seg_oracle_masks`` etc.; docs/fisa.md).
        gt_key: field holding the panoptic ground truth.
        per_class: also return ``PQ.<class name>``.
        collect_device, prefix: as mmengine's ``BaseMetric`` (``prefix='oracle_masks'``
            reports ``oracle_masks/PQ``).
    """

    def __init__(self, pred_key: str = "pred_panoptic_seg", gt_key: str = "gt_panoptic_seg", per_class: bool = False,
                 collect_device: str = "cpu", prefix: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, **kwargs)
        self.pred_key = pred_key
        self.gt_key = gt_key
        self.per_class = per_class

    def _num_classes(self) -> int:
        if not self.dataset_meta or "classes" not in self.dataset_meta:
            raise ValueError("PanopticQualityMetric needs dataset_meta['classes'] (set by the Evaluator from the "
                             "dataset's metainfo)")
        if self.dataset_meta.get("thing_classes") is None:
            raise ValueError("PanopticQualityMetric needs dataset_meta['thing_classes'] (OVPanopticDataset sets it "
                             "from the vocabulary's 'things' or the annotation file's categories; [] = all stuff): "
                             "the ground truth's isthing flags miss thing classes that occur only in predictions")
        return len(self.dataset_meta["classes"])

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        num_classes = self._num_classes()
        for k, sample in enumerate(data_samples):
            meta = sample if isinstance(sample, dict) else sample.metainfo
            source = str(meta.get("img_path", f"sample {k}"))
            gt, gt_segments = _pixel_field(sample, self.gt_key)
            pred, pred_segments = _pixel_field(sample, self.pred_key)
            stats = pq_image_stats(gt, gt_segments, pred, pred_segments, num_classes, source)
            rows = np.nonzero(stats.any(1))[0]
            self.results.append((rows, stats[rows]))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        classes: Sequence[str] = self.dataset_meta["classes"]
        n = len(classes)
        self._num_classes()
        per_image = np.zeros((len(results), n, 4), np.float64)
        for i, (rows, values) in enumerate(results):
            per_image[i, rows] = values
        self.image_stats = ImageStats("pq", per_image, tuple(classes),
                                      tuple(self.dataset_meta.get("unseen_classes") or ()),
                                      tuple(self.dataset_meta["thing_classes"]))
        stats = np.zeros((n, 4), np.float64)
        for rows, values in results:
            np.add.at(stats, rows, values)
        thing_names = set(self.dataset_meta["thing_classes"])
        is_thing = np.array([c in thing_names for c in classes], bool)
        metrics: Dict[str, float] = {}
        for suffix, mask in (("", None), ("_th", is_thing), ("_st", ~is_thing)):
            avg = pq_average(stats, mask)
            for key in ("pq", "sq", "rq"):
                metrics[f"{key.upper()}{suffix}"] = 100.0 * avg[key]
        unseen = set(self.dataset_meta.get("unseen_classes") or ())
        if unseen:
            is_unseen = np.array([c in unseen for c in classes], bool)
            metrics["PQ_seen"] = 100.0 * pq_average(stats, ~is_unseen)["pq"]
            metrics["PQ_unseen"] = 100.0 * pq_average(stats, is_unseen)["pq"]
        per = pq_per_class(stats)
        if self.per_class:
            metrics.update({f"PQ.{c}": 100.0 * float(v) for c, v in zip(classes, per["pq"])})
        self._log_table(classes, stats, per, is_thing, metrics)
        return metrics

    def _log_table(self, classes, stats, per, is_thing, metrics) -> None:
        from prettytable import PrettyTable

        table = PrettyTable(["class", "kind", "PQ", "SQ", "RQ", "TP", "FP", "FN"])
        for i, c in enumerate(classes):
            if stats[i, TP] + stats[i, FP] + stats[i, FN] == 0:
                continue
            table.add_row([c, "thing" if is_thing[i] else "stuff", f"{100 * per['pq'][i]:.2f}",
                           f"{100 * per['sq'][i]:.2f}", f"{100 * per['rq'][i]:.2f}",
                           int(stats[i, TP]), int(stats[i, FP]), int(stats[i, FN])])
        summary = ", ".join(f"{k}={v:.2f}" for k, v in metrics.items() if not k.startswith("PQ."))
        print_log(f"per-class panoptic quality ({self.pred_key}):\n{table.get_string()}\n{summary}",
                  logger=MMLogger.get_current_instance())
