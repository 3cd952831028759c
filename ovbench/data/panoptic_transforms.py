"""Panoptic ground truth in MMSeg pipelines (the contract of ``docs/fisa.md``).

``LoadPanopticAnnotations`` reads a COCO-panoptic PNG (Kirillov et al., 2019:
segment id = R + 256 G + 256^2 B, 0 = void) and gives two aligned maps:

* ``gt_seg_map``: vocabulary index per pixel, ``ignore_index`` for void -- the
  map the semantic datasets give, so semantic models and metrics run unchanged;
* ``gt_panoptic_seg``: int32 segment ids, 0 = void.

Both are listed in ``results['seg_fields']``, so MMSeg's ``Resize``,
``RandomCrop``, ``RandomFlip`` (nearest, same window) move them together.
``PackPanopticInputs`` packs the id map as ``PixelData`` with the
``segments_info`` of the segments still present after cropping.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS

#: the form of one ``segments_info`` entry inside the pipeline (0-based category)
SEGMENT_FORM = "{'id': int > 0, 'category': int (0-based vocabulary index), 'iscrowd': 0|1, 'isthing': 0|1}"


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic colour encoding -> int32 ids (``R + 256 G + 256^2 B``)."""
    if rgb.ndim == 2:  # already an id map (e.g. a 16-bit PNG)
        return rgb.astype(np.int32)
    ids = rgb[..., 2].astype(np.int32)  # in place from here: fewer temporaries than the weighted sum
    ids <<= 8
    ids |= rgb[..., 1]
    ids <<= 8
    ids |= rgb[..., 0]
    return ids


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_id` (uint8 ``H x W x 3``)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], -1).astype(np.uint8)


def semantic_from_panoptic(ids: np.ndarray, segments_info: List[Dict[str, Any]], ignore_index: int = 255,
                           source: str = "<panoptic map>") -> np.ndarray:
    """Vocabulary-index map from a segment-id map: void (0) -> ``ignore_index``.

    Raises when the map holds an id with no ``segments_info`` entry (a PNG that
    does not match its JSON), naming ``source``.
    """
    cat_of = {int(s["id"]): int(s["category"]) for s in segments_info}
    uniq, inverse = np.unique(ids, return_inverse=True)
    lut = np.full(len(uniq), ignore_index, dtype=np.int64)
    for k, u in enumerate(uniq.tolist()):
        if u == 0:
            continue
        if u not in cat_of:
            raise ValueError(
                f"{source}: segment id {u} is in the PNG but has no segments_info entry "
                f"(listed ids: {sorted(cat_of)[:10]}); the PNG and the JSON do not match"
            )
        if cat_of[u] >= 0:
            lut[k] = cat_of[u]
    cats = np.array(list(cat_of.values()), dtype=np.int64)
    dtype = np.uint8 if ignore_index <= 255 and (len(cats) == 0 or cats.max() < 255) else np.int32
    return lut[inverse].reshape(ids.shape).astype(dtype)


@TRANSFORMS.register_module()
class LoadPanopticAnnotations(BaseTransform):
    """Load a COCO-panoptic PNG into ``gt_seg_map`` and ``gt_panoptic_seg``.

    Required keys: ``seg_map_path`` (the panoptic PNG), ``segments_info``
    (entries of the form :data:`SEGMENT_FORM`, as the panoptic datasets give;
    ``category`` = -1 marks a segment outside the vocabulary, made void).
    Added keys: ``gt_seg_map``, ``gt_panoptic_seg`` (int32; ``cv2`` resizes int32
    but silently narrows int64), both appended to ``seg_fields``.

    Args:
        ignore_index: value of void pixels in ``gt_seg_map``; ``None`` takes the
            dataset's (``results['ignore_index']`` if present) or 255.
        imdecode_backend: mmcv decoding backend (both give BGR: handled).
        backend_args: mmengine file backend arguments.
    """

    def __init__(self, ignore_index: Optional[int] = None, imdecode_backend: str = "pillow",
                 backend_args: Optional[dict] = None) -> None:
        self.ignore_index = ignore_index
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results.get("seg_map_path")
        if path is None or "segments_info" not in results:
            raise KeyError(
                "LoadPanopticAnnotations needs results['seg_map_path'] (the panoptic PNG) and "
                f"results['segments_info'] (entries {SEGMENT_FORM}); use a panoptic dataset such as OVPanopticDataset"
            )
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        raw = mmcv.imfrombytes(img_bytes, flag="unchanged", backend=self.imdecode_backend)
        if raw.ndim == 3 and raw.shape[2] == 4:
            raw = raw[..., :3]
        if raw.ndim == 3 and raw.shape[2] == 3:
            raw = raw[..., ::-1]  # mmcv decodes colour PNGs as BGR with either backend
        if raw.ndim == 3 and raw.shape[2] != 3:
            raise ValueError(f"{path}: expected an RGB panoptic PNG (id = R + 256 G + 65536 B), got shape {raw.shape}")
        ids = rgb_to_id(raw)
        segments = [dict(s) for s in results["segments_info"]]
        for s in segments:
            missing = [k for k in ("id", "category", "iscrowd", "isthing") if k not in s]
            if missing:
                raise KeyError(f"{path}: segments_info entry {s} lacks {missing}; expected {SEGMENT_FORM}")
        # Segments outside the vocabulary become void in both maps.
        dropped = [int(s["id"]) for s in segments if int(s["category"]) < 0]
        ignore = self.ignore_index
        if ignore is None:
            ignore = int(results.get("ignore_index", 255))
        sem = semantic_from_panoptic(ids, segments, ignore, source=path)
        if dropped:
            ids = np.where(np.isin(ids, dropped), 0, ids).astype(np.int32)
            segments = [s for s in segments if int(s["category"]) >= 0]
        results["gt_seg_map"] = sem
        results["gt_panoptic_seg"] = ids.astype(np.int32)
        results["segments_info"] = segments
        fields = results.setdefault("seg_fields", [])
        for key in ("gt_seg_map", "gt_panoptic_seg"):
            if key not in fields:
                fields.append(key)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ignore_index={self.ignore_index}, imdecode_backend={self.imdecode_backend!r})"


@TRANSFORMS.register_module()
class PackPanopticInputs(PackSegInputs):
    """``PackSegInputs`` that also packs ``gt_panoptic_seg``.

    ``data_sample.gt_panoptic_seg = PixelData(data=LongTensor[1, H, W],
    metainfo={'segments_info': [...]})``; segments that a crop removed entirely
    are dropped from ``segments_info`` (a metric would count them as missed).
    """

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        if "gt_panoptic_seg" in results:
            ids = np.asarray(results["gt_panoptic_seg"])
            if ids.ndim != 2:
                raise ValueError(f"PackPanopticInputs: gt_panoptic_seg must be H x W, got shape {ids.shape}")
            present = set(np.unique(ids).tolist())
            segments = [
                {k: int(s[k]) for k in ("id", "category", "iscrowd", "isthing")}
                for s in results.get("segments_info", []) if int(s["id"]) in present
            ]
            data = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)[None])
            packed["data_samples"].gt_panoptic_seg = PixelData(data=data, metainfo=dict(segments_info=segments))
        return packed
