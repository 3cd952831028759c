"""Mask-classification inference: per-proposal masks + class probabilities -> semantic / panoptic maps.

Both functions follow the inference of Mask2Former (Cheng et al., "Masked-attention
Mask Transformer for Universal Image Segmentation", CVPR 2022, Sec. 4 and its
appendix), written for ovbench from the paper's description:

* semantic: the score of class ``c`` at a pixel is ``sum_q p(c | q) m_q(pixel)``;
* panoptic: proposals whose score clears a threshold compete per pixel through
  ``score_q * m_q(pixel)``; a proposal that keeps too little of its own mask is
  dropped (it is mostly hidden behind others), stuff segments of the same class
  are merged, every thing proposal is its own segment.

Pure tensor functions (no model, no data sample), so they are tested on hand-made cases.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor


def semantic_inference(mask_probs: Tensor, class_probs: Tensor) -> Tensor:
    """Per-class score maps ``[C, H, W] = sum_q class_probs[q, c] * mask_probs[q]``.

    Args:
        mask_probs: ``[N, H, W]`` mask probabilities (sigmoid of the mask logits, or binary masks).
        class_probs: ``[N, C]`` class probabilities of each proposal; fold any objectness in here
            (a proposal with all-zero probabilities contributes nothing).
    """
    if mask_probs.dim() != 3 or class_probs.dim() != 2 or mask_probs.shape[0] != class_probs.shape[0]:
        raise ValueError(f"semantic_inference: expected mask_probs [N, H, W] and class_probs [N, C], got "
                         f"{tuple(mask_probs.shape)} and {tuple(class_probs.shape)}")
    return torch.einsum("nc,nhw->chw", class_probs.to(mask_probs.dtype), mask_probs)


def panoptic_inference(
    mask_probs: Tensor,
    scores: Tensor,
    labels: Tensor,
    is_thing: Sequence[bool],
    score_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    mask_threshold: float = 0.5,
) -> Tuple[Tensor, List[Dict[str, int]]]:
    """Panoptic segments from scored proposals (Mask2Former's procedure, Cheng et al. 2022).

    1. keep the proposals with ``score > score_threshold``;
    2. each pixel goes to the kept proposal with the largest ``score * mask_prob``;
    3. a kept proposal's *visible* region is the pixels it wins where its own mask is on
       (``mask_prob >= mask_threshold``); the proposal is dropped when visible area / own
       area (``mask_prob >= mask_threshold``) < ``overlap_threshold``, or when it is empty;
    4. the survivors become segments: a thing proposal gets its own id, stuff proposals of
       one class share the id of that class's first segment. Pixels of no segment are 0 (void).

    Args:
        mask_probs: ``[N, H, W]`` in [0, 1].
        scores: ``[N]`` proposal scores (objectness x class probability).
        labels: ``[N]`` class index of each proposal.
        is_thing: per class (indexed by label), whether it is a thing class.
        score_threshold, overlap_threshold: as above (Mask2Former: 0.8 and 0.8).
        mask_threshold: the binarisation level of a mask (0.5).

    Returns:
        ``(ids [H, W] long, segments_info)``, ids numbered 1, 2, ... in order of creation;
        ``segments_info``: ``[{'id', 'category', 'isthing'}, ...]`` (``isthing`` 0/1).
    """
    if mask_probs.dim() != 3:
        raise ValueError(f"panoptic_inference: mask_probs must be [N, H, W], got {tuple(mask_probs.shape)}")
    n, h, w = mask_probs.shape
    if scores.shape != (n,) or labels.shape != (n,):
        raise ValueError(f"panoptic_inference: scores and labels must be [{n}], got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)}")
    ids = torch.zeros((h, w), dtype=torch.long, device=mask_probs.device)
    segments: List[Dict[str, int]] = []
    keep = torch.nonzero(scores > score_threshold).flatten()
    if keep.numel() == 0:
        return ids, segments
    masks = mask_probs[keep]
    weighted = scores[keep].to(masks.dtype)[:, None, None] * masks
    winner = weighted.argmax(0)  # [H, W], index into `keep`
    stuff_id: Dict[int, int] = {}
    for j in range(keep.numel()):
        label = int(labels[keep[j]])
        if not 0 <= label < len(is_thing):
            raise ValueError(f"panoptic_inference: label {label} outside is_thing (length {len(is_thing)})")
        own = masks[j] >= mask_threshold
        own_area = int(own.sum())
        visible = (winner == j) & own
        visible_area = int(visible.sum())
        if own_area == 0 or visible_area == 0 or visible_area / own_area < overlap_threshold:
            continue
        thing = bool(is_thing[label])
        if not thing and label in stuff_id:
            ids[visible] = stuff_id[label]
            continue
        seg_id = len(segments) + 1
        ids[visible] = seg_id
        segments.append({"id": seg_id, "category": label, "isthing": int(thing)})
        if not thing:
            stuff_id[label] = seg_id
    return ids, segments
