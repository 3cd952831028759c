"""A slow, literal panoptic-quality reference for the tests (shares no code with the metric).

Written from the definition of Kirillov et al. (CVPR 2019) and the behaviour
COCO's panopticapi documents: one boolean mask per segment, one loop per
(gt, prediction) pair. Conventions: id 0 = void; a segment listed but with no
pixels is ignored; one crowd region per category and image (the last listed).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Optional, Sequence


def reference_image_stats(gt, gt_segments: Sequence[dict], pred, pred_segments: Sequence[dict]) -> Dict[int, dict]:
    """{category: {'iou', 'tp', 'fp', 'fn'}} for one image."""
    stats: Dict[int, dict] = defaultdict(lambda: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0})
    void = gt == 0
    gts = [(s, gt == s["id"]) for s in gt_segments]
    gts = [(s, m) for s, m in gts if m.sum() > 0]
    preds = [(s, pred == s["id"]) for s in pred_segments]
    preds = [(s, m) for s, m in preds if m.sum() > 0]

    matched_gt, matched_pred = set(), set()
    for g, gm in gts:
        if g.get("iscrowd", 0):
            continue
        for p, pm in preds:
            if p["category"] != g["category"]:
                continue
            inter = int((gm & pm).sum())
            union = int((gm | pm).sum()) - int((pm & void).sum())
            if union > 0 and inter / union > 0.5:
                assert g["id"] not in matched_gt and p["id"] not in matched_pred  # IoU > 0.5 is unique
                matched_gt.add(g["id"])
                matched_pred.add(p["id"])
                stats[g["category"]]["tp"] += 1
                stats[g["category"]]["iou"] += inter / union

    crowd_mask = {}
    for g, gm in [(s, gt == s["id"]) for s in gt_segments]:  # listed order; absent crowd segments count too
        if g.get("iscrowd", 0):
            crowd_mask[g["category"]] = gm
    for g, _ in gts:
        if g["id"] not in matched_gt and not g.get("iscrowd", 0):
            stats[g["category"]]["fn"] += 1
    for p, pm in preds:
        if p["id"] in matched_pred:
            continue
        covered = pm & void
        if p["category"] in crowd_mask:
            covered = covered | (pm & crowd_mask[p["category"]])
        if covered.sum() / pm.sum() > 0.5:
            continue
        stats[p["category"]]["fp"] += 1
    return stats


def reference_pq(images: List[tuple], num_classes: int, things: Optional[set] = None) -> dict:
    """PQ/SQ/RQ (fractions) for all / things / stuff and per class from (gt, gt_segs, pred, pred_segs) tuples."""
    total = {c: {"iou": 0.0, "tp": 0, "fp": 0, "fn": 0} for c in range(num_classes)}
    for gt, gs, pred, ps in images:
        for c, st in reference_image_stats(gt, gs, pred, ps).items():
            for k in st:
                total[c][k] += st[k]
    per_class = {}
    for c, st in total.items():
        if st["tp"] + st["fp"] + st["fn"] == 0:
            continue
        denom = st["tp"] + 0.5 * st["fp"] + 0.5 * st["fn"]
        per_class[c] = {"pq": st["iou"] / denom, "sq": st["iou"] / st["tp"] if st["tp"] else 0.0,
                        "rq": st["tp"] / denom, **st}
    out = {"per_class": per_class}
    groups = {"all": lambda c: True}
    if things is not None:
        groups.update(things=lambda c: c in things, stuff=lambda c: c not in things)
    for name, keep in groups.items():
        cs = [c for c in per_class if keep(c)]
        out[name] = {k: (sum(per_class[c][k] for c in cs) / len(cs) if cs else float("nan"))
                     for k in ("pq", "sq", "rq")}
    return out
