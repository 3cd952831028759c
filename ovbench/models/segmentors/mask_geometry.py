"""Geometry shared by the mask-classification segmentor and its oracle analysis.

Masks live in three frames: the generator's (1/4 of the input), the padded network
input, and the original image. These helpers move masks and ground truth between
them; the input -> original step itself is MMSeg's ``postprocess_result``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from torch import Tensor

from ovbench.models.segmentors.panoptic_inference import semantic_inference


def upsample(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of ``[B, K, h, w]`` maps (the generator's masks to the input size)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def ori_shape(meta: Dict[str, Any], default: Sequence[int]) -> Tuple[int, int]:
    h, w = meta.get("ori_shape", default)[:2]
    return int(h), int(w)


def semantic_pixels(masks: Tensor, class_probs: Tensor) -> PixelData:
    """``pred_sem_seg`` of ``masks [N, H, W]`` with ``class_probs [N, C]``; 255 where no mask scores."""
    scores = semantic_inference(masks, class_probs)
    pred = scores.argmax(0, keepdim=True)
    pred[scores.sum(0, keepdim=True) <= 0] = 255
    return PixelData(data=pred)


def padded_ids(sample: SegDataSample, input_hw: Sequence[int], meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The sample's segment-id map in the frame of the (padded) network input, as the dict form
    ``gt_masks_from_panoptic`` reads: resized (nearest) to ``img_shape`` when it is at another size
    (test pipelines load the ground truth after ``Resize``), then padded with void as the data
    preprocessor padded the image."""
    meta = sample.metainfo if meta is None else meta
    pan = getattr(sample, "gt_panoptic_seg", None)
    if pan is None:
        raise KeyError("OVMaskClassSegmentor: the data sample has no gt_panoptic_seg (load the data with "
                       "LoadPanopticAnnotations + PackPanopticInputs, docs/fisa.md)")
    ids = pan.data
    ids = ids[0] if ids.dim() == 3 else ids
    img_h, img_w = (int(v) for v in meta.get("img_shape", ids.shape)[:2])
    if tuple(ids.shape) != (img_h, img_w):
        ids = F.interpolate(ids[None, None].float(), size=(img_h, img_w), mode="nearest")[0, 0].long()
    left, right, top, bottom = (int(v) for v in meta.get("padding_size", [0] * 4))
    if not any((left, right, top, bottom)):  # training batches: stack_batch pads bottom/right
        bottom, right = int(input_hw[0]) - img_h, int(input_hw[1]) - img_w
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"OVMaskClassSegmentor: ground truth {(img_h, img_w)} larger than the input {tuple(input_hw)}")
    ids = F.pad(ids, (left, right, top, bottom), value=0)
    return {"gt_panoptic_seg": {"data": ids[None], "segments_info": pan.metainfo.get("segments_info", [])}}
