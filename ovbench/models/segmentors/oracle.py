"""FISA's bottleneck analysis (Chng et al., arXiv 2409.16278): which stage limits a mask-classification model.

Each mode re-runs one stage with the ground truth and writes ``pred_sem_seg_<mode>`` /
``pred_panoptic_seg_<mode>`` beside the real prediction (docs/fisa.md):

* ``'oracle_masks'``: the sample's ground-truth segments (every non-void one, crowd
  included) replace the proposals, objectness 1, classified by the model as usual;
* ``'oracle_classes'``: the binarised proposals are matched to the ground-truth segments
  (Hungarian on IoU, pairs with IoU > ``match_iou``, default 0.5: FISA's reading,
  "Hungarian or IoU > 0.5", which coincide there since IoU > 0.5 matches are unique); a
  matched proposal gets its segment's class with probability 1, an unmatched one is void.
  ``match_iou=0.0`` (before issue 13) also hands the true class to proposals that barely
  overlap their segment.

Both need the ground truth in the data samples.
"""
from __future__ import annotations

from typing import Callable, Sequence, Tuple

import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

from ovbench.models.heads.mask_matching import gt_masks_from_panoptic, match_by_iou
from ovbench.models.segmentors.mask_geometry import ori_shape, padded_ids, semantic_pixels

ORACLE_MODES = ("oracle_masks", "oracle_classes")

#: ``(masks [N, H, W], class_probs [N, C]) -> pred_panoptic_seg``
PanopticFn = Callable[[Tensor, Tensor], PixelData]


class OracleAnalysis:
    """The oracle modes of one model: ``modes`` (a subset of :data:`ORACLE_MODES`), the IoU a proposal
    needs with its segment (``oracle_classes``) and the mask binarisation level."""

    def __init__(self, modes: Sequence[str], match_iou: float, mask_threshold: float) -> None:
        bad = [m for m in modes if m not in ORACLE_MODES]
        if bad:
            raise ValueError(f"OVMaskClassSegmentor.test_cfg.extra_modes: unknown {bad}; expected some of "
                             f"{ORACLE_MODES}")
        if not 0.0 <= float(match_iou) < 1.0:
            raise ValueError("OVMaskClassSegmentor.test_cfg.oracle_match_iou: expected 0 <= IoU < 1 (0.5: FISA's "
                             f"'IoU > 0.5' reading), got {match_iou!r}")
        self.modes = tuple(modes)
        self.match_iou = float(match_iou)
        self.mask_threshold = float(mask_threshold)

    def run(self, sample: SegDataSample, img: Tensor, classify: Callable[[Tensor], Tensor],
            masks_out: Tensor, num_classes: int, panoptic: PanopticFn) -> None:
        """Write every mode's maps into ``sample``.

        ``img``: the sample's ``[1, 3, H, W]`` input; ``classify(masks [1, K, H, W])`` -> ``[K, C]``
        probabilities (the model's classifier); ``masks_out``: the proposals ``[N, Ho, Wo]`` at the
        original size."""
        for mode in self.modes:
            if mode == "oracle_masks":
                sem, pan = self.oracle_masks(sample, img, classify, panoptic)
            else:
                sem, pan = self.oracle_classes(sample, masks_out, num_classes, panoptic)
            sample.set_field(sem, f"pred_sem_seg_{mode}")
            sample.set_field(pan, f"pred_panoptic_seg_{mode}")

    @staticmethod
    def oracle_masks(sample: SegDataSample, img: Tensor, classify: Callable[[Tensor], Tensor],
                     panoptic: PanopticFn) -> Tuple[PixelData, PixelData]:
        """Ground-truth segments as the proposals (objectness 1), classified by the model."""
        meta = sample.metainfo
        input_hw = tuple(img.shape[-2:])
        gt_in = gt_masks_from_panoptic(padded_ids(sample, input_hw, meta), include_crowd=True)
        gt_out = gt_masks_from_panoptic(sample, size=ori_shape(meta, input_hw), include_crowd=True)
        if gt_in.masks.shape[0] == 0:
            ids = torch.zeros((1, *gt_out.masks.shape[-2:]), dtype=torch.long, device=img.device)
            return PixelData(data=torch.full_like(ids, 255)), PixelData(data=ids, metainfo=dict(segments_info=[]))
        # the same segments in both frames (a segment may vanish in one resize): keep the common ids
        common = [int(s) for s in gt_in.ids.tolist() if s in set(gt_out.ids.tolist())]
        pick_in = torch.tensor([gt_in.ids.tolist().index(s) for s in common], dtype=torch.long)
        pick_out = torch.tensor([gt_out.ids.tolist().index(s) for s in common], dtype=torch.long)
        probs = classify(gt_in.masks[pick_in].to(img.device, torch.float32)[None])
        masks = gt_out.masks[pick_out].to(img.device, torch.float32)
        return semantic_pixels(masks, probs), panoptic(masks, probs)

    def oracle_classes(self, sample: SegDataSample, masks_out: Tensor, num_classes: int,
                       panoptic: PanopticFn) -> Tuple[PixelData, PixelData]:
        """Binarised proposals matched to the ground truth, each matched one given its true class."""
        binary = masks_out >= self.mask_threshold
        gt = gt_masks_from_panoptic(sample, size=binary.shape[-2:], include_crowd=True)
        rows, cols, _ = match_by_iou(binary, gt.masks.to(binary.device), min_iou=self.match_iou)
        probs = torch.zeros(binary.shape[0], num_classes, device=binary.device)
        probs[rows.to(binary.device), gt.categories[cols].to(binary.device)] = 1.0
        masks = binary.float()
        return semantic_pixels(masks, probs), panoptic(masks, probs)
