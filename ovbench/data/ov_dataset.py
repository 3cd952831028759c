"""A semantic-segmentation dataset whose vocabulary is data, not code.

Open-vocabulary benchmarks evaluate one model on datasets with different class
lists, each split into classes the segmentation training set labels ("seen")
and classes it never labels ("unseen"). MMSeg datasets hard-code their classes
in ``METAINFO``; :class:`OVSegDataset` reads them, and the split, from a JSON
vocabulary file so that a new benchmark needs a file, not a class.

Vocabulary file (``*.json``)::

    {"name": "synth-large",
     "classes": ["red felt", "blue brick", ...],      # index = label id in the PNGs
     "unseen": ["blue brick", ...],                   # optional; the rest is seen
     "things": ["cup", ...],                          # optional; countable classes (panoptic); the rest is stuff
     "palette": [[r, g, b], ...]}                     # optional
"""
from __future__ import annotations

import colorsys
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

VOCABULARY_FORM = (
    'a JSON object {"name": str, "classes": [str, ...], "unseen": [str, ...] (optional), '
    '"things": [str, ...] (optional), "prompts": {class: [name, ...]} (optional), '
    '"palette": [[r, g, b], ...] (optional)}'
)
#: Vocabularies shipped with ovbench (``vocabulary='ade847'`` in a config).
SHIPPED_VOCABULARIES = osp.join(osp.dirname(__file__), "vocabularies")


def shipped_vocabularies() -> List[str]:
    return sorted(f[:-5] for f in os.listdir(SHIPPED_VOCABULARIES) if f.endswith(".json"))


@dataclass(frozen=True)
class Vocabulary:
    """Class names of one dataset and which of them the training set never labels."""

    name: str
    classes: tuple
    unseen: frozenset = field(default_factory=frozenset)
    palette: Optional[tuple] = None
    #: class -> the names it is prompted with (its score is the max over them); default: its own name
    prompts: Dict[str, tuple] = field(default_factory=dict)
    #: countable ("thing") classes for panoptic evaluation; None = not given by the file
    things: Optional[frozenset] = None

    @property
    def seen(self) -> frozenset:
        return frozenset(self.classes) - self.unseen

    def metainfo(self) -> Dict[str, Any]:
        palette = self.palette or default_palette(len(self.classes))
        extra = {} if self.things is None else dict(thing_classes=tuple(c for c in self.classes if c in self.things))
        return dict(
            **extra,
            classes=tuple(self.classes),
            palette=[list(c) for c in palette],
            unseen_classes=tuple(c for c in self.classes if c in self.unseen),
            seen_classes=tuple(c for c in self.classes if c not in self.unseen),
            class_prompts={c: list(p) for c, p in self.prompts.items()},
            vocabulary_name=self.name,
        )


def default_palette(n: int) -> List[tuple]:
    """Distinct, deterministic colours (golden-ratio hues) for visualisation."""
    out = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.65 + 0.35 * ((i // 7) % 2), 0.95 - 0.3 * ((i // 3) % 2))
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _fail(source: str, key: str, problem: str) -> None:
    raise ValueError(f"{source}: key '{key}': {problem}. Expected {VOCABULARY_FORM}.")


def load_vocabulary(source: Union[str, os.PathLike, Dict[str, Any]]) -> Vocabulary:
    """Read and validate a vocabulary from a JSON file path or an already-loaded dict."""
    if isinstance(source, dict):
        raw, where = source, "<vocabulary dict>"
    else:
        where = os.fspath(source)
        shipped = osp.join(SHIPPED_VOCABULARIES, f"{where}.json")
        if not osp.isfile(where) and osp.sep not in where and osp.isfile(shipped):
            where = shipped
        if not osp.isfile(where):
            raise FileNotFoundError(
                f"vocabulary file not found: {where} (nor a shipped vocabulary: {shipped_vocabularies()}). "
                f"Expected {VOCABULARY_FORM}."
            )
        with open(where, encoding="utf-8") as f:
            try:
                raw = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e}). Expected {VOCABULARY_FORM}.") from None
    if not isinstance(raw, dict):
        _fail(where, "<root>", f"got {type(raw).__name__}")
    classes = raw.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes):
        _fail(where, "classes", "must be a non-empty list of non-empty strings")
    if len(set(classes)) != len(classes):
        dupes = sorted({c for c in classes if classes.count(c) > 1})
        _fail(where, "classes", f"duplicate names {dupes}")
    unseen = raw.get("unseen", [])
    if not isinstance(unseen, list) or not all(isinstance(c, str) for c in unseen):
        _fail(where, "unseen", "must be a list of class names")
    unknown = sorted(set(unseen) - set(classes))
    if unknown:
        _fail(where, "unseen", f"names not in 'classes': {unknown}")
    things = raw.get("things")
    if things is not None:
        if not isinstance(things, list) or not all(isinstance(c, str) for c in things):
            _fail(where, "things", "must be a list of class names")
        unknown = sorted(set(things) - set(classes))
        if unknown:
            _fail(where, "things", f"names not in 'classes': {unknown}")
        things = frozenset(things)
    palette = raw.get("palette")
    if palette is not None:
        ok = isinstance(palette, list) and len(palette) == len(classes) and all(
            isinstance(c, (list, tuple)) and len(c) == 3 for c in palette
        )
        if not ok:
            _fail(where, "palette", f"must be {len(classes)} [r, g, b] triples")
        palette = tuple(tuple(int(v) for v in c) for c in palette)
    prompts = raw.get("prompts", {})
    if not isinstance(prompts, dict):
        _fail(where, "prompts", "must be an object {class name: [prompt name, ...]}")
    for cls, names in prompts.items():
        if cls not in classes:
            _fail(where, f"prompts.{cls}", "is not in 'classes'")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            _fail(where, f"prompts.{cls}", "must be a non-empty list of non-empty strings")
    name = raw.get("name", osp.splitext(osp.basename(where))[0])
    return Vocabulary(
        name=str(name),
        classes=tuple(classes),
        unseen=frozenset(unseen),
        palette=palette,
        prompts={c: tuple(n) for c, n in prompts.items()},
        things=things,
    )


@DATASETS.register_module()
class OVSegDataset(BaseSegDataset):
    """MMSeg's ``img_dir``/``ann_dir`` PNG layout with a vocabulary read from JSON.

    Args:
        vocabulary: path to the vocabulary JSON (relative paths are resolved
            against ``data_root``), the name of a shipped vocabulary
            (``ade847``, ``pc459``, ``voc20``, ``voc20b``), or an equivalent dict.
        list_from: ``'images'`` (every image needs a label) or ``'labels'`` (list
            the labelled images only: VOC/PASCAL-Context keep all images in one
            ``JPEGImages`` folder but label a subset).
        ignore_index: label value to ignore; exported in the metainfo so that
            ``OpenVocabIoUMetric`` uses the same one (65535 for 16-bit label sets).
        check_labels: read this many label maps at construction and refuse ids
            outside the vocabulary (a class list that does not match the
            annotations), so the error comes before training, not in it. 0 = off.
    """

    def __init__(
        self,
        vocabulary: Union[str, Dict[str, Any]],
        img_suffix: str = ".png",
        seg_map_suffix: str = ".png",
        reduce_zero_label: bool = False,
        list_from: str = "images",
        ignore_index: int = 255,
        check_labels: int = 4,
        **kwargs: Any,
    ) -> None:
        if list_from not in ("images", "labels"):
            raise ValueError(f"{type(self).__name__}: list_from must be 'images' or 'labels', got {list_from!r}")
        self.list_from = list_from
        data_root = kwargs.get("data_root") or ""
        if isinstance(vocabulary, str) and not osp.isabs(vocabulary) and data_root:
            local = osp.join(data_root, vocabulary)
            if osp.isfile(local) or vocabulary.endswith(".json"):
                vocabulary = local
        self.vocabulary = load_vocabulary(vocabulary)
        metainfo = dict(self.vocabulary.metainfo(), ignore_index=ignore_index)
        metainfo.update(kwargs.pop("metainfo", None) or {})
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            ignore_index=ignore_index,
            metainfo=metainfo,
            **kwargs,
        )
        lazy = kwargs.get("lazy_init", False)  # a lazy dataset lists no files yet (ovbench.data.check)
        if check_labels and not self.test_mode and self.label_map is None and not lazy:
            self._check_label_ids(check_labels)

    def _check_label_ids(self, n: int) -> None:
        """Refuse label maps holding ids >= the number of classes (other than ``ignore_index``)."""
        import numpy as np
        from PIL import Image

        num_classes = len(self.vocabulary.classes)
        for i in range(min(n, len(self))):  # data_list itself is serialised away after full_init
            path = self.get_data_info(i).get("seg_map_path")
            if not path or not osp.isfile(path):
                continue
            ids = np.unique(np.asarray(Image.open(path)))
            bad = [int(i) for i in ids if i != self.ignore_index and i >= num_classes]
            if bad:
                raise ValueError(
                    f"{type(self).__name__}: {path} holds label id(s) {bad[:5]} but the vocabulary "
                    f"'{self.vocabulary.name}' has {num_classes} classes (ids 0..{num_classes - 1}, "
                    f"{self.ignore_index} = ignore): the class list does not match the annotations."
                )

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get("img_path", "")
        if not osp.isdir(img_dir):
            raise FileNotFoundError(
                f"{type(self).__name__}: image folder not found: {img_dir!r} (data_root="
                f"{self.data_root!r}). Expected MMSeg's layout DATA_ROOT/img_dir/<split>/*{self.img_suffix} "
                f"with labels in DATA_ROOT/ann_dir/<split>/*{self.seg_map_suffix}; see docs/datasets.md."
            )
        if self.list_from == "labels":
            return self._list_from_labels(img_dir)
        data_list = super().load_data_list()
        ann_dir = self.data_prefix.get("seg_map_path", "")
        if ann_dir:
            missing = [d["seg_map_path"] for d in data_list if not osp.isfile(d["seg_map_path"])]
            if missing:
                raise FileNotFoundError(
                    f"{type(self).__name__}: {len(missing)} image(s) in {img_dir} have no label in {ann_dir}, "
                    f"e.g. {missing[0]}. Every image needs a label PNG of the same stem; see docs/datasets.md."
                )
        return data_list

    def _list_from_labels(self, img_dir: str) -> List[dict]:
        ann_dir = self.data_prefix.get("seg_map_path", "")
        if not osp.isdir(ann_dir):
            raise FileNotFoundError(f"{type(self).__name__}: label folder not found: {ann_dir!r}; see docs/datasets.md")
        data_list = []
        for name in sorted(os.listdir(ann_dir)):
            if not name.endswith(self.seg_map_suffix):
                continue
            stem = name[: -len(self.seg_map_suffix)]
            img = osp.join(img_dir, stem + self.img_suffix)
            if not osp.isfile(img):
                raise FileNotFoundError(f"{type(self).__name__}: label {osp.join(ann_dir, name)} has no image {img}")
            data_list.append(dict(img_path=img, seg_map_path=osp.join(ann_dir, name), label_map=self.label_map,
                                  reduce_zero_label=self.reduce_zero_label, seg_fields=[]))
        if not data_list:
            raise FileNotFoundError(f"{type(self).__name__}: no *{self.seg_map_suffix} labels in {ann_dir}")
        return data_list


def class_names(vocabulary: Union[str, Dict[str, Any]]) -> Sequence[str]:
    """Convenience: the ordered class names of a vocabulary file."""
    return load_vocabulary(vocabulary).classes
