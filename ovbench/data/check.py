"""Check a dataset's files before anything trains: folder, split, one sample image and its label, the listing.

A study of many trials on real data should fail in a second, naming the set and
the path, when a dataset is missing or laid out differently, not hours later in
its first evaluation (or, worse, after creating a study). The check builds the
dataset class lazily (mmengine's ``lazy_init``) to learn its folders and suffixes,
decodes the first label and its image, then lists the whole set as it will be read
(where ovbench's classes find an image without its label), so it holds for every
layout a config can name (CAT-Seg's ADE-847 / PC-459 / VOC-20, MMSeg's ADE-150 /
PC-59 / COCO-Stuff, COCO panoptic, the synthetic sets) without a table of layouts of
its own.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Any, List, Optional

from ovbench.data.roots import dataset_tree
from ovbench.errors import InputError

LAYOUT_DOC = "docs/datasets.md"


class DatasetMissing(InputError):
    """One or more datasets a command needs are not on disk in the expected layout."""


def _layout(ds: Any) -> str:
    """The expected layout, relative to the data root: ``images/*.jpg + labels/*.png [+ ann_file]``."""
    rel = lambda p: osp.relpath(p, ds.data_root) if p else "."  # noqa: E731
    prefix = ds.data_prefix
    text = (f"{rel(prefix.get('img_path'))}/*{getattr(ds, 'img_suffix', '')} with labels "
            f"{rel(prefix.get('seg_map_path'))}/*{getattr(ds, 'seg_map_suffix', '')}")
    return text + (f" and {rel(ds.ann_file)}" if ds.ann_file else "")


def _declared_layout(cfg: Any) -> str:
    """The layout a dataset config states (for a set whose class cannot be built without its files)."""
    prefix = dict(cfg.get("data_prefix") or {})
    parts = [f"{v or '.'}/" for v in prefix.values()] + ([cfg["ann_file"]] if cfg.get("ann_file") else [])
    return f"the layout of {cfg.get('type')} ({', '.join(parts)})" if parts else f"the layout of {cfg.get('type')}"


def _sample_problem(ds: Any) -> Optional[str]:
    """Why the first label of the set (sorted) and its image cannot be read, or None."""
    img_dir, seg_dir = ds.data_prefix.get("img_path"), ds.data_prefix.get("seg_map_path")
    seg_suffix, img_suffix = getattr(ds, "seg_map_suffix", ""), getattr(ds, "img_suffix", "")
    for folder, what in ((img_dir, "image"), (seg_dir, "label")):
        if folder and not osp.isdir(folder):
            return f"{what} folder (split) not found: {folder}"
    if ds.ann_file and not osp.isfile(ds.ann_file):
        return f"annotation file not found: {ds.ann_file}"
    labels = sorted(f for f in _listdir(seg_dir) if f.endswith(seg_suffix))
    if not labels:
        return f"no *{seg_suffix} label in {seg_dir}"
    label = osp.join(seg_dir, labels[0])
    image = osp.join(img_dir, labels[0][: len(labels[0]) - len(seg_suffix)] + img_suffix)
    if not osp.isfile(image) and ds.ann_file:
        image = _image_in_annotations(ds, labels[0]) or image
    if not osp.isfile(image):
        return f"label {label} has no image {image}"
    for path in (image, label):
        if (problem := _unreadable(path)) is not None:
            return problem
    return None


def _listing_problem(ds: Any) -> Optional[str]:
    """Why the set's whole file list cannot be built, or None. ovbench's dataset classes check there that
    every image has its label (and a panoptic set that every file its JSON lists exists); listing costs
    a folder scan (a JSON read for COCO-style sets), so a set missing one label fails before a study
    trains, not in its first evaluation."""
    try:
        ds.full_init()
    except FileNotFoundError as e:
        return str(e)
    return None


def _image_in_annotations(ds: Any, label_name: str) -> Optional[str]:
    """The image a COCO-style annotation file pairs with label ``label_name`` (its ``images[].file_name``
    may hold a folder, as the embedded benchmark's ``img_dir/val/...``), through the dataset's own
    mapping; None if the file does not name it. Read only when the label's own name has no image."""
    import json

    try:
        with open(ds.ann_file, encoding="utf-8") as fh:
            coco = json.load(fh)
        ann = next(a for a in coco.get("annotations", []) if a.get("file_name") == label_name)
        image = next((i for i in coco.get("images", []) if i.get("id") == ann.get("image_id")), None)
        return ds._image_path(image, ann) if hasattr(ds, "_image_path") else None
    except (OSError, ValueError, StopIteration):
        return None


def _listdir(folder: str) -> List[str]:
    try:
        return [f for f in os.listdir(folder) if not f.startswith(".")]
    except OSError:
        return []


def _unreadable(path: str) -> Optional[str]:
    """Why an image file cannot be decoded (a truncated download, an HTML error page saved as .jpg)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # PIL raises many types for a bad file
        return f"cannot read {path} as an image ({type(e).__name__})"
    return None


def dataset_problem(name: str, dataset_cfg: Any) -> Optional[str]:
    """Why the dataset ``name`` (a dataset config, data_root already resolved) cannot be used, or None."""
    from mmseg.registry import DATASETS

    root = dataset_cfg.get("data_root")
    cfg = copy.deepcopy(dataset_cfg)
    cfg["lazy_init"] = True
    cfg["pipeline"] = []  # the files are checked, not transformed
    try:
        ds = DATASETS.build(cfg)
    except Exception as e:  # e.g. a vocabulary.json that lives in the missing folder
        where = f"folder not found: {root}" if root and not osp.isdir(root) else f"{type(e).__name__}: {e}"
        return f"dataset {name}: {where}; expected {_declared_layout(cfg)} under it ({LAYOUT_DOC})"
    if root and not osp.isdir(root):
        return f"dataset {name}: folder not found: {root}; expected {_layout(ds)} under it ({LAYOUT_DOC})"
    problem = _sample_problem(ds)
    if problem is None:
        problem = _listing_problem(ds)
    if problem is None:
        return None
    return f"dataset {name} at {root}: {problem}; expected {_layout(ds)} ({LAYOUT_DOC})"


def check_datasets(datasets: Any) -> None:
    """Raise :class:`DatasetMissing` listing every dataset of ``{name: dataset config}`` that is unusable."""
    import logging

    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # building a set warns about its vocabulary name: noise beside the verdict
    try:
        # a wrapper (ConcatDataset, RepeatDataset, ...) is no layout of files: what it wraps is checked
        problems = [p for name, cfg in datasets.items() for leaf, leaf_cfg, wrapper in dataset_tree(name, cfg)
                    if not wrapper and (p := dataset_problem(leaf, leaf_cfg)) is not None]
    finally:
        logger.setLevel(level)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise DatasetMissing(f"{len(problems)} dataset(s) missing or incomplete (set --data-root DIR or "
                             f"$OVBENCH_DATA_ROOT to where they are):\n{lines}")
