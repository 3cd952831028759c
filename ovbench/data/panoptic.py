"""COCO-panoptic-format datasets with a vocabulary read from data.

COCO panoptic (Kirillov et al., "Panoptic Segmentation", CVPR 2019) stores one
PNG per image whose colour encodes a segment id (``R + 256 G + 256^2 B``, 0 =
void) and a JSON whose ``annotations[].segments_info`` give each segment's
``category_id`` and ``iscrowd``; ``categories`` give names and ``isthing``.
COCO, ADE20K (Mask2Former's conversion) and Cityscapes (cityscapesScripts)
panoptic all use it; they differ in folder layout and in category ids.

Category ids are mapped to vocabulary indices **by name**, so one vocabulary
file (the open-vocabulary class list with its seen/unseen split) serves the
semantic and the panoptic version of a dataset, whatever ids the JSON uses.
Each data info carries ``segments_info`` entries
``{'id', 'category' (0-based vocabulary index), 'iscrowd', 'isthing'}`` for
:class:`~ovbench.data.panoptic_transforms.LoadPanopticAnnotations`.
"""
from __future__ import annotations

import json
import os.path as osp
import warnings
from typing import Any, Dict, List, Optional, Union

import numpy as np
from mmseg.registry import DATASETS

from ovbench.data.ov_dataset import OVSegDataset

PANOPTIC_JSON_FORM = (
    "COCO panoptic JSON {'images': [{'id', 'file_name'}], 'annotations': [{'image_id', 'file_name', "
    "'segments_info': [{'id', 'category_id', 'iscrowd'}]}], 'categories': [{'id', 'name', 'isthing'}]}"
)


def read_panoptic_json(path: str) -> Dict[str, Any]:
    """Load and check the keys every COCO panoptic JSON must have (errors name file and key)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"panoptic annotation file not found: {path}. Expected {PANOPTIC_JSON_FORM}")
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}). Expected {PANOPTIC_JSON_FORM}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: root is {type(raw).__name__}. Expected {PANOPTIC_JSON_FORM}")
    for key in ("annotations", "categories"):
        if not isinstance(raw.get(key), list):
            raise ValueError(f"{path}: key '{key}' missing or not a list. Expected {PANOPTIC_JSON_FORM}")
    for i, c in enumerate(raw["categories"]):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise ValueError(
                f"{path}: categories[{i}] needs 'id' and 'name' (got {c!r}). Expected {PANOPTIC_JSON_FORM}")
    return raw


def vocabulary_from_categories(categories: List[dict], name: str) -> Dict[str, Any]:
    """A vocabulary dict (``OVSegDataset`` form) listing the JSON's categories in id order, all seen."""
    cats = sorted(categories, key=lambda c: c["id"])
    return {"name": name, "classes": [c["name"] for c in cats],
            "things": [c["name"] for c in cats if int(c.get("isthing", 0))]}


@DATASETS.register_module()
class OVPanopticDataset(OVSegDataset):
    """A COCO-panoptic-format dataset; categories mapped to the vocabulary by name.

    Layout (the synthetic benchmark's; subclasses set the real ones)::

        data_root/
          vocabulary.json               # classes, unseen, things
          panoptic_val.json             # ann_file (COCO panoptic)
          panoptic/val/*.png            # data_prefix['seg_map_path'] + annotations[].file_name
          img_dir/val/*.png             # data_prefix['img_path'] ('' here) + images[].file_name

    Args:
        ann_file: the panoptic JSON (relative to ``data_root``).
        vocabulary: vocabulary file / shipped name / dict (see ``OVSegDataset``);
            ``None`` derives it from the JSON's ``categories`` (id order, all seen).
        data_prefix: ``img_path`` (folder that ``images[].file_name`` is
            relative to) and ``seg_map_path`` (folder of the panoptic PNGs).
        unknown_categories: ``'error'`` (a category whose name is not in the
            vocabulary is refused, naming file and key) or ``'void'`` (its
            segments become void: evaluating a vocabulary subset).
        check_labels: decode this many PNGs at construction and refuse segment
            ids missing from the JSON, so a mismatch fails before training.

    ``thing_classes`` (metainfo) come from the vocabulary's ``things`` if it has
    them, else from the categories' ``isthing``; each segment's ``isthing``
    follows ``thing_classes``.
    """

    def __init__(
        self,
        ann_file: str,
        vocabulary: Union[str, Dict[str, Any], None] = None,
        data_prefix: Optional[Dict[str, str]] = None,
        unknown_categories: str = "error",
        check_labels: int = 4,
        ignore_index: int = 255,
        **kwargs: Any,
    ) -> None:
        if unknown_categories not in ("error", "void"):
            raise ValueError(f"{type(self).__name__}: unknown_categories must be 'error' or 'void', "
                             f"got {unknown_categories!r}")
        self.unknown_categories = unknown_categories
        data_root = kwargs.get("data_root") or ""
        self._json_path = ann_file if (osp.isabs(ann_file) or not data_root) else osp.join(data_root, ann_file)
        self._panoptic = read_panoptic_json(self._json_path)
        if vocabulary is None:
            vocabulary = vocabulary_from_categories(self._panoptic["categories"],
                                                    osp.splitext(osp.basename(self._json_path))[0])
        metainfo = dict(kwargs.pop("metainfo", None) or {})
        super().__init__(
            vocabulary=vocabulary,
            ann_file=ann_file,
            data_prefix=data_prefix or dict(img_path="", seg_map_path=""),
            ignore_index=ignore_index,
            check_labels=0,
            metainfo=metainfo,
            **kwargs,
        )
        self._metainfo["thing_classes"] = tuple(c for c in self.vocabulary.classes if c in self._thing_names())
        self._panoptic = None  # parsed into data_list; do not keep a second copy
        if check_labels and self._fully_initialized:
            self._check_panoptic_ids(check_labels)

    def _thing_names(self) -> set:
        """The metainfo's ``thing_classes`` if set, else the vocabulary's, else the JSON's ``isthing``."""
        if self._metainfo.get("thing_classes") is not None:
            return set(self._metainfo["thing_classes"])
        if self.vocabulary.things is not None:
            return set(self.vocabulary.things)
        return {c["name"] for c in self._panoptic["categories"] if int(c.get("isthing", 0))}

    def _category_map(self) -> Dict[int, int]:
        """JSON category id -> vocabulary index (-1 = outside the vocabulary, made void)."""
        index = {c: i for i, c in enumerate(self.vocabulary.classes)}
        out = {}
        for i, c in enumerate(self._panoptic["categories"]):
            if c["name"] in index:
                out[int(c["id"])] = index[c["name"]]
            elif self.unknown_categories == "void":
                out[int(c["id"])] = -1
            else:
                raise ValueError(
                    f"{type(self).__name__}: {self._json_path}: categories[{i}].name {c['name']!r} (id {c['id']}) "
                    f"is not a class of vocabulary '{self.vocabulary.name}' ({len(index)} classes, e.g. "
                    f"{list(index)[:5]}). Expected every category name to be a vocabulary class; pass "
                    f"unknown_categories='void' to evaluate a subset."
                )
            json_thing = int(c.get("isthing", 0))
            if self.vocabulary.things is not None and c["name"] in index and json_thing != (
                    c["name"] in self.vocabulary.things):
                warnings.warn(f"{self._json_path}: category {c['name']!r} has isthing={json_thing} but the "
                              f"vocabulary '{self.vocabulary.name}' says otherwise; the vocabulary is used")
        return out

    def _image_path(self, image: Optional[dict], ann: dict) -> str:
        """Path of the image of one annotation; subclasses map their layout."""
        if image is None or "file_name" not in image:
            raise ValueError(f"{type(self).__name__}: {self._json_path}: annotation {ann.get('file_name')!r} "
                             f"has image_id {ann.get('image_id')!r} with no images[] entry holding 'file_name'")
        return osp.join(self.data_prefix.get("img_path", ""), image["file_name"])

    def load_data_list(self) -> List[dict]:
        if self._panoptic is None:  # full_init again after construction
            self._panoptic = read_panoptic_json(self._json_path)
        cat_map = self._category_map()
        things = self._thing_names()
        classes = self.vocabulary.classes
        images = {img["id"]: img for img in self._panoptic.get("images", []) if isinstance(img, dict) and "id" in img}
        seg_dir = self.data_prefix.get("seg_map_path", "")
        data_list = []
        for a, ann in enumerate(self._panoptic["annotations"]):
            if "file_name" not in ann or not isinstance(ann.get("segments_info"), list):
                raise ValueError(f"{type(self).__name__}: {self._json_path}: annotations[{a}] needs 'file_name' "
                                 f"and a 'segments_info' list. Expected {PANOPTIC_JSON_FORM}")
            segments = []
            for s in ann["segments_info"]:
                cid = int(s.get("category_id", -10**9))
                if cid not in cat_map:
                    raise ValueError(
                        f"{type(self).__name__}: {self._json_path}: annotations[{a}] ({ann['file_name']}): segment "
                        f"{s.get('id')} has category_id {s.get('category_id')!r}, not one of 'categories' "
                        f"({sorted(cat_map)[:10]}...)"
                    )
                cat = cat_map[cid]
                segments.append(dict(id=int(s["id"]), category=cat, iscrowd=int(s.get("iscrowd", 0)),
                                     isthing=int(cat >= 0 and classes[cat] in things)))
            data_list.append(dict(
                img_path=self._image_path(images.get(ann.get("image_id")), ann),
                seg_map_path=osp.join(seg_dir, ann["file_name"]),
                segments_info=segments,
                image_id=ann.get("image_id"),
                ignore_index=self.ignore_index,
                label_map=None,
                reduce_zero_label=False,
                seg_fields=[],
            ))
        if not data_list:
            raise ValueError(f"{type(self).__name__}: {self._json_path} has no annotations")
        missing = [d["img_path"] for d in data_list if not osp.isfile(d["img_path"])]
        if missing:
            raise FileNotFoundError(f"{type(self).__name__}: {len(missing)} image(s) listed in {self._json_path} "
                                    f"not found, e.g. {missing[0]} (img_path prefix "
                                    f"{self.data_prefix.get('img_path')!r}); see docs/panoptic.md for the layouts")
        missing = [d["seg_map_path"] for d in data_list if not osp.isfile(d["seg_map_path"])]
        if missing:
            raise FileNotFoundError(f"{type(self).__name__}: {len(missing)} panoptic PNG(s) listed in "
                                    f"{self._json_path} not found, e.g. {missing[0]} (seg_map_path prefix "
                                    f"{seg_dir!r}); see docs/panoptic.md for the layouts")
        return data_list

    def _check_panoptic_ids(self, n: int) -> None:
        """Refuse PNG segment ids that the JSON does not list (before training, not in it)."""
        from PIL import Image

        from ovbench.data.panoptic_transforms import rgb_to_id

        for i in range(min(n, len(self))):
            info = self.get_data_info(i)
            ids = np.unique(rgb_to_id(np.asarray(Image.open(info["seg_map_path"]).convert("RGB"))))
            listed = {s["id"] for s in info["segments_info"]}
            bad = [int(v) for v in ids if v != 0 and int(v) not in listed]
            if bad:
                raise ValueError(f"{type(self).__name__}: {info['seg_map_path']} holds segment id(s) {bad[:5]} "
                                 f"that {self._json_path} does not list for it; the PNGs and the JSON do not match")


def _split_defaults(kwargs: dict, ann_file: str, data_prefix: dict) -> None:
    kwargs.setdefault("ann_file", ann_file)
    kwargs.setdefault("data_prefix", data_prefix)


@DATASETS.register_module()
class COCOPanopticDataset(OVPanopticDataset):
    """COCO panoptic 2017 (133 categories, non-contiguous ids 1..200), Detectron2's layout::

        data_root/                      # e.g. data/coco
          annotations/panoptic_{train,val}2017.json
          panoptic_{train,val}2017/*.png
          {train,val}2017/*.jpg

    ``split``: ``'train'`` or ``'val'``. The vocabulary defaults to the JSON's
    categories (id order); pass an open-vocabulary file to set unseen classes.
    """

    def __init__(self, split: str = "val", **kwargs: Any) -> None:
        s = split if split.endswith("2017") else f"{split}2017"
        _split_defaults(kwargs, f"annotations/panoptic_{s}.json", dict(img_path=s, seg_map_path=f"panoptic_{s}"))
        super().__init__(**kwargs)


@DATASETS.register_module()
class ADE20KPanopticDataset(OVPanopticDataset):
    """ADE20K-150 panoptic, Mask2Former's ``prepare_ade20k_pan_seg.py`` output::

        data_root/                      # e.g. data/ADEChallengeData2016
          ade20k_panoptic_{train,val}.json
          ade20k_panoptic_{train,val}/ADE_*.png
          images/{training,validation}/ADE_*.jpg
    """

    def __init__(self, split: str = "val", **kwargs: Any) -> None:
        folder = {"train": "training", "val": "validation"}.get(split)
        if folder is None:
            raise ValueError(f"ADE20KPanopticDataset: split must be 'train' or 'val', got {split!r}")
        _split_defaults(kwargs, f"ade20k_panoptic_{split}.json",
                        dict(img_path=f"images/{folder}", seg_map_path=f"ade20k_panoptic_{split}"))
        super().__init__(**kwargs)


@DATASETS.register_module()
class CityscapesPanopticDataset(OVPanopticDataset):
    """Cityscapes panoptic (19 categories, ids = Cityscapes label ids), cityscapesScripts'
    ``createPanopticImgs`` output::

        data_root/                      # e.g. data/cityscapes
          gtFine/cityscapes_panoptic_{train,val}.json
          gtFine/cityscapes_panoptic_{train,val}/<city>_<seq>_<frame>_gtFine_panoptic.png
          leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png

    Images sit in per-city folders; the city is the file name's first field.
    """

    def __init__(self, split: str = "val", **kwargs: Any) -> None:
        _split_defaults(kwargs, f"gtFine/cityscapes_panoptic_{split}.json",
                        dict(img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/cityscapes_panoptic_{split}"))
        super().__init__(**kwargs)

    def _image_path(self, image: Optional[dict], ann: dict) -> str:
        name = (image or {}).get("file_name") or ann["file_name"].replace("_gtFine_panoptic.png", "_leftImg8bit.png")
        city = name.split("_")[0]
        return osp.join(self.data_prefix.get("img_path", ""), city, osp.basename(name))
