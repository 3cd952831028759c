"""The real open-vocabulary evaluation sets that MMSegmentation lacks, in CAT-Seg's layouts.

Data preparation follows CAT-Seg's ``datasets/README.md`` (Cho et al., CVPR
2024; see docs/datasets.md for the commands). Class names ship as vocabulary
files in ``ovbench/data/vocabularies/`` (from CAT-Seg's class lists). ADE20K-150
and PASCAL-Context-59 are MMSeg's own ``ADE20KDataset`` and
``PascalContextDataset59``; COCO-Stuff-171 is ``COCOStuffDataset``.

Each class only sets defaults: data_root, prefixes, suffixes and vocabulary can
still be overridden from a config.
"""
from __future__ import annotations

from typing import Any

from mmseg.registry import DATASETS

from ovbench.data.ov_dataset import OVSegDataset

#: 16-bit label sets (ids above 255): ignore value of CAT-Seg's TIFF labels.
WIDE_IGNORE_INDEX = 65535


def _defaults(kwargs: dict, **defaults: Any) -> dict:
    for key, value in defaults.items():
        kwargs.setdefault(key, value)
    return kwargs


@DATASETS.register_module()
class ADE20K847Dataset(OVSegDataset):
    """ADE20K-Full, 847 classes, validation. Layout::

        ADE20K_2021_17_01/images/ADE/validation/*.jpg
        ADE20K_2021_17_01/annotations_detectron2/validation/*.tif   (uint16, 65535 = ignore)

    Use ``LoadWideAnnotations`` in the pipeline (ids go up to 846).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_defaults(
            kwargs, vocabulary="ade847", img_suffix=".jpg", seg_map_suffix=".tif", list_from="labels",
            ignore_index=WIDE_IGNORE_INDEX,
            data_prefix=dict(img_path="images/ADE/validation", seg_map_path="annotations_detectron2/validation"),
        ))


@DATASETS.register_module()
class PascalContext459Dataset(OVSegDataset):
    """PASCAL-Context full, 459 classes, validation. Layout::

        VOCdevkit/VOC2010/JPEGImages/*.jpg
        VOCdevkit/VOC2010/annotations_detectron2/pc459_val/*.tif    (uint16, 65535 = ignore)

    Use ``LoadWideAnnotations`` in the pipeline (ids go up to 458).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_defaults(
            kwargs, vocabulary="pc459", img_suffix=".jpg", seg_map_suffix=".tif", list_from="labels",
            ignore_index=WIDE_IGNORE_INDEX,
            data_prefix=dict(img_path="JPEGImages", seg_map_path="annotations_detectron2/pc459_val"),
        ))


@DATASETS.register_module()
class PascalVOC20Dataset(OVSegDataset):
    """PASCAL VOC 2012 val, 20 classes, background ignored. Layout::

        VOCdevkit/VOC2012/JPEGImages/*.jpg
        VOCdevkit/VOC2012/annotations_detectron2/val/*.png          (0-19, 255 = ignore/background)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_defaults(
            kwargs, vocabulary="voc20", img_suffix=".jpg", seg_map_suffix=".png", list_from="labels",
            data_prefix=dict(img_path="JPEGImages", seg_map_path="annotations_detectron2/val"),
        ))


@DATASETS.register_module()
class PascalVOC20bDataset(OVSegDataset):
    """PASCAL VOC 2012 val, 20 classes + background (id 20), background prompted by 39
    PASCAL-Context names (CAT-Seg's VOC-20b). Layout::

        VOCdevkit/VOC2012/JPEGImages/*.jpg
        VOCdevkit/VOC2012/annotations_detectron2_bg/val/*.png       (0-20, 255 = ignore)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_defaults(
            kwargs, vocabulary="voc20b", img_suffix=".jpg", seg_map_suffix=".png", list_from="labels",
            data_prefix=dict(img_path="JPEGImages", seg_map_path="annotations_detectron2_bg/val"),
        ))
