"""Set-prediction matching and losses for class-agnostic mask proposals.

After Mask2Former (Cheng et al., CVPR 2022) / DETR (Carion et al., ECCV 2020): each image's
predictions are matched one-to-one to its ground-truth segments by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on the cost

    w_obj * (-sigmoid(objectness)) + w_bce * pairwise sigmoid BCE + w_dice * pairwise dice,

and the losses are objectness BCE (matched queries -> 1, the others -> 0 down-weighted by
``no_object_weight``) plus mask BCE and dice on the matched pairs, summed over the decoder's
predictions (deep supervision). Class-agnostic: Mask2Former's softmax over classes + "no
object" becomes one objectness logit.

Where Mask2Former samples points (PointRend-style importance sampling) to afford
high-resolution masks, this module uses **all pixels** at the ground truth's resolution,
with the mask logits bilinearly upsampled to it: the embedded benchmark's 64x64 images
make that exact and cheap (pass smaller ground truth, e.g. ``gt_masks_from_panoptic(...,
size=...)``, to trade exactness for speed at larger sizes).

Also here: :func:`match_by_iou` (Hungarian on IoU, for the ``oracle_classes`` evaluation
mode) and :func:`gt_masks_from_panoptic` (binary ground-truth masks from a data sample's
``gt_panoptic_seg``, shared with the mask classifier).
"""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor


# ---------------------------------------------------------------------------- ground truth
class GTMasks(NamedTuple):
    """Binary ground-truth segments of one image."""

    masks: Tensor  # [M, H, W] bool
    categories: Tensor  # [M] long, 0-based index into the vocabulary
    iscrowd: Tensor  # [M] bool
    isthing: Tensor  # [M] bool
    ids: Tensor  # [M] long, segment ids in the panoptic map


def panoptic_fields(data_sample, key: str = "gt_panoptic_seg") -> Tuple[Tensor, list]:
    """``(id map, segments_info)`` of a panoptic field of a ``SegDataSample``, or of the plain dict
    mmengine evaluators receive (``sample.to_dict()``: the field is ``{'data': ..., 'segments_info': ...}``)."""
    pan = data_sample.get(key) if isinstance(data_sample, dict) else getattr(data_sample, key, None)
    if pan is None:
        raise KeyError(f"data sample has no '{key}' (load the data with LoadPanopticAnnotations + "
                       "PackPanopticInputs, docs/fisa.md)")
    if isinstance(pan, dict):
        ids, infos = pan.get("data"), pan.get("segments_info")
    else:
        ids, infos = pan.data, pan.metainfo.get("segments_info")
    if ids is None or infos is None:
        raise KeyError(f"'{key}' needs data [1, H, W] (segment ids, 0 = void) and metainfo 'segments_info' "
                       "(a list of {'id', 'category', 'iscrowd', 'isthing'} dicts)")
    return torch.as_tensor(ids), list(infos)


def gt_masks_from_panoptic(data_sample, size: Optional[Sequence[int]] = None, include_crowd: bool = False) -> GTMasks:
    """Binary masks of the segments of ``data_sample.gt_panoptic_seg`` (docs/fisa.md's form).

    Args:
        data_sample: a ``SegDataSample`` with ``gt_panoptic_seg = PixelData(data=[1, H, W] ids,
            metainfo={'segments_info': [{'id', 'category', 'iscrowd', 'isthing'}, ...]})``, or
            its ``to_dict()`` form.
        size: ``(h, w)`` to resize the id map to (nearest) before building masks; ``None``
            keeps ``H, W``. Segments left empty by the resize are dropped.
        include_crowd: keep crowd segments (evaluation); training leaves them out, as
            Mask2Former does (they are neither targets nor penalised).

    Void (id 0) and ids not in ``segments_info`` belong to no mask.
    """
    ids, infos = panoptic_fields(data_sample, "gt_panoptic_seg")
    if ids.dim() == 3:
        ids = ids[0]
    ids = ids.long()
    if size is not None and tuple(ids.shape) != tuple(size):
        ids = F.interpolate(ids[None, None].float(), size=tuple(int(s) for s in size), mode="nearest")[0, 0].long()
    keep = [s for s in infos if include_crowd or not s.get("iscrowd", 0)]
    if keep:
        seg_ids = torch.tensor([int(s["id"]) for s in keep], dtype=torch.long, device=ids.device)
        masks = ids[None] == seg_ids[:, None, None]
        nonempty = masks.flatten(1).any(1)
    else:
        seg_ids = torch.zeros(0, dtype=torch.long, device=ids.device)
        masks = torch.zeros((0, *ids.shape), dtype=torch.bool, device=ids.device)
        nonempty = torch.zeros(0, dtype=torch.bool, device=ids.device)

    def field(key: str) -> Tensor:
        return torch.tensor([int(s.get(key, 0)) for s in keep], dtype=torch.long, device=ids.device)

    return GTMasks(masks=masks[nonempty], categories=field("category")[nonempty],
                   iscrowd=field("iscrowd")[nonempty].bool(), isthing=field("isthing")[nonempty].bool(),
                   ids=seg_ids[nonempty])


# ---------------------------------------------------------------------------- pairwise costs
def pairwise_sigmoid_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean per-pixel BCE of every prediction ``[N, P]`` (logits) with every target ``[M, P]``
    (in [0, 1]) -> ``[N, M]``, without materialising ``[N, M, P]``."""
    pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def pairwise_dice(logits: Tensor, targets: Tensor, eps: float = 1.0) -> Tensor:
    """Dice loss (1 - soft dice, +1 smoothing as Mask2Former) of every pair -> ``[N, M]``."""
    p = logits.sigmoid()
    inter = p @ targets.T
    return 1 - (2 * inter + eps) / (p.sum(-1)[:, None] + targets.sum(-1)[None] + eps)


def pairwise_iou(pred: Tensor, gt: Tensor) -> Tensor:
    """IoU of every boolean mask ``[N, ...]`` with every ``[M, ...]`` -> ``[N, M]`` (0 where the union is empty)."""
    p = pred.flatten(1).float()
    g = gt.flatten(1).float()
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def match_by_iou(pred_masks_bool: Tensor, gt_masks_bool: Tensor, min_iou: float = 0.0
                 ) -> Tuple[Tensor, Tensor, Tensor]:
    """One-to-one matching of predicted to ground-truth masks maximising the total IoU (Hungarian).

    Args:
        pred_masks_bool: ``[N, H, W]`` bool.
        gt_masks_bool: ``[M, H, W]`` bool, same ``H, W``.
        min_iou: pairs with IoU <= ``min_iou`` are dropped from the result (with the default
            0, pairs that do not overlap at all, which the assignment pairs arbitrarily).

    Returns:
        ``(pred_idx, gt_idx, iou)``: long ``[K]``, long ``[K]``, float ``[K]``, sorted by ``gt_idx``.
    """
    if pred_masks_bool.shape[1:] != gt_masks_bool.shape[1:]:
        raise ValueError(f"match_by_iou: mask sizes differ: pred {tuple(pred_masks_bool.shape)}, "
                         f"gt {tuple(gt_masks_bool.shape)}")
    iou = pairwise_iou(pred_masks_bool.bool(), gt_masks_bool.bool())
    empty = torch.zeros(0, dtype=torch.long)
    if iou.numel() == 0:
        return empty, empty.clone(), torch.zeros(0)
    rows, cols = linear_sum_assignment(iou.detach().cpu().double().numpy(), maximize=True)
    rows_t, cols_t = torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)
    vals = iou.detach().cpu()[rows_t, cols_t]
    keep = vals > min_iou
    order = torch.argsort(cols_t[keep])
    return rows_t[keep][order], cols_t[keep][order], vals[keep][order]


# ---------------------------------------------------------------------------- criterion
class MaskProposalCriterion:
    """Hungarian matching + objectness/mask losses for :class:`QueryMaskGenerator` outputs.

    Args:
        cost_obj, cost_bce, cost_dice: matching-cost weights (Mask2Former: 2, 5, 5).
        loss_obj, loss_bce, loss_dice: loss weights (Mask2Former: 2, 5, 5).
        no_object_weight: weight of the objectness BCE of unmatched queries (Mask2Former's
            ``eos_coef`` 0.1); the objectness loss is the weighted mean over queries.
    """

    def __init__(self, cost_obj: float = 2.0, cost_bce: float = 5.0, cost_dice: float = 5.0,
                 loss_obj: float = 2.0, loss_bce: float = 5.0, loss_dice: float = 5.0,
                 no_object_weight: float = 0.1) -> None:
        self.cost_obj, self.cost_bce, self.cost_dice = cost_obj, cost_bce, cost_dice
        self.loss_obj, self.loss_bce, self.loss_dice = loss_obj, loss_bce, loss_dice
        self.no_object_weight = no_object_weight

    @staticmethod
    def _flat(mask_logits: Tensor, size: Sequence[int]) -> Tensor:
        if tuple(mask_logits.shape[-2:]) != tuple(size):
            mask_logits = F.interpolate(mask_logits, size=tuple(size), mode="bilinear", align_corners=False)
        return mask_logits.flatten(-2)

    @torch.no_grad()
    def match(self, mask_logits: Tensor, objectness: Tensor, gt_masks: Sequence[Tensor]) -> List[Tuple[Tensor, Tensor]]:
        """Per image ``(pred_idx, gt_idx)``. ``mask_logits [B, N, h, w]``, ``objectness [B, N]``,
        ``gt_masks``: per image ``[M_i, H, W]`` bool/float (any ``M_i`` >= 0)."""
        out = []
        for b, gt in enumerate(gt_masks):
            if gt.shape[0] == 0:
                out.append((torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
                continue
            logits = self._flat(mask_logits[b:b + 1], gt.shape[-2:])[0].float()
            target = gt.flatten(1).to(logits)
            cost = (self.cost_obj * -objectness[b].float().sigmoid()[:, None]
                    + self.cost_bce * pairwise_sigmoid_bce(logits, target)
                    + self.cost_dice * pairwise_dice(logits, target))
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            out.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return out

    def single(self, mask_logits: Tensor, objectness: Tensor, gt_masks: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Losses of one prediction (one decoder layer), weighted."""
        if len(gt_masks) != mask_logits.shape[0]:
            raise ValueError(f"MaskProposalCriterion: {mask_logits.shape[0]} predictions but {len(gt_masks)} "
                             "ground-truth mask sets")
        indices = self.match(mask_logits, objectness, gt_masks)
        target_obj = torch.zeros_like(objectness)
        for b, (rows, _) in enumerate(indices):
            target_obj[b, rows.to(objectness.device)] = 1.0
        weight = torch.where(target_obj > 0, torch.ones_like(target_obj),
                             torch.full_like(target_obj, self.no_object_weight))
        obj = F.binary_cross_entropy_with_logits(objectness, target_obj, weight=weight, reduction="sum") / weight.sum()

        preds, targets = [], []
        for b, (rows, cols) in enumerate(indices):
            if rows.numel() == 0:
                continue
            gt = gt_masks[b]
            preds.append(self._flat(mask_logits[b:b + 1, rows.to(mask_logits.device)], gt.shape[-2:])[0])
            targets.append(gt[cols.to(gt.device)].flatten(1).to(mask_logits))
        if preds:
            p = torch.cat(preds)
            t = torch.cat(targets)
            bce = F.binary_cross_entropy_with_logits(p, t, reduction="none").mean(1).mean()
            prob = p.sigmoid()
            dice = (1 - (2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)).mean()
        else:  # no ground truth in the batch: only the objectness loss (keeps the graph connected)
            bce = dice = mask_logits.sum() * 0.0
        return dict(loss_obj=self.loss_obj * obj, loss_mask=self.loss_bce * bce, loss_dice=self.loss_dice * dice)

    def __call__(self, outputs: Dict[str, object], gt_masks: Sequence[Tensor]) -> Dict[str, Tensor]:
        """Losses summed over the final and the ``aux`` predictions of ``outputs``."""
        preds = list(outputs.get("aux") or []) + [(outputs["mask_logits"], outputs["objectness"])]
        total: Dict[str, Tensor] = {}
        for mask_logits, objectness in preds:
            for k, v in self.single(mask_logits, objectness, gt_masks).items():
                total[k] = total[k] + v if k in total else v
        return total
