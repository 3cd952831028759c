"""Data transforms registered in MMSeg's TRANSFORMS."""
from __future__ import annotations

import mmcv
import numpy as np
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadWideAnnotations(LoadAnnotations):
    """``LoadAnnotations`` for label maps with more than 256 ids (16-bit PNG/TIFF).

    mmseg 1.2.2's ``LoadAnnotations`` casts every label map to ``uint8``, which
    silently wraps ADE20K-847's and PASCAL-Context-459's ids above 255 (CAT-Seg
    stores them as 16-bit TIFFs with 65535 = ignore). This keeps the ids as
    int64; the dataset's ``ignore_index`` (metainfo) tells the metric what to skip.
    """

    def __init__(self, **kwargs) -> None:
        if kwargs.get("reduce_zero_label"):
            raise ValueError("LoadWideAnnotations: reduce_zero_label is not supported for wide label maps")
        super().__init__(**kwargs)

    def _load_seg_map(self, results: dict) -> None:
        if results.get("reduce_zero_label"):
            raise ValueError(
                f"LoadWideAnnotations: dataset sets reduce_zero_label, unsupported for {results['seg_map_path']}"
            )
        img_bytes = fileio.get(results["seg_map_path"], backend_args=self.backend_args)
        seg = mmcv.imfrombytes(img_bytes, flag="unchanged", backend=self.imdecode_backend).squeeze()
        if seg.ndim != 2:
            raise ValueError(f"{results['seg_map_path']}: expected a single-channel label map, got shape {seg.shape}")
        seg = seg.astype(np.int64)
        if results.get("label_map"):
            original = seg.copy()
            for old_id, new_id in results["label_map"].items():
                seg[original == old_id] = new_id
        results["gt_seg_map"] = seg
        results["seg_fields"].append("gt_seg_map")
