"""Real evaluation-set classes (CAT-Seg layouts), shipped vocabularies, 16-bit labels and prompts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ovbench.data import ADE20K847Dataset, PascalVOC20bDataset, load_vocabulary, shipped_vocabularies


def test_shipped_vocabularies_have_the_published_sizes():
    sizes = {name: len(load_vocabulary(name).classes) for name in shipped_vocabularies()}
    assert sizes == {"ade847": 847, "pc459": 459, "voc20": 20, "voc20b": 21}
    assert len(load_vocabulary("voc20b").prompts["background"]) == 39


def _fake_ade847(root, labels):
    img_dir = root / "images" / "ADE" / "validation"
    ann_dir = root / "annotations_detectron2" / "validation"
    img_dir.mkdir(parents=True)
    ann_dir.mkdir(parents=True)
    for i, label in enumerate(labels):
        Image.fromarray(np.zeros((*label.shape, 3), np.uint8)).save(img_dir / f"ADE_val_{i:08d}.jpg")
        Image.fromarray(label.astype(np.uint16)).save(ann_dir / f"ADE_val_{i:08d}.tif")
    # an unlabelled image in the same folder must be skipped (list_from='labels')
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img_dir / "ADE_train_unlabelled.jpg")


def test_ade847_keeps_16_bit_ids_and_its_ignore_value(tmp_path):
    label = np.array([[300, 300, 846, 65535], [0, 255, 256, 65535]])
    _fake_ade847(tmp_path, [label])
    ds = ADE20K847Dataset(
        data_root=str(tmp_path),
        pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadWideAnnotations"), dict(type="PackSegInputs")],
    )
    assert len(ds) == 1 and len(ds.metainfo["classes"]) == 847
    assert ds.metainfo["ignore_index"] == 65535
    gt = ds[0]["data_samples"].gt_sem_seg.data[0]
    assert gt.tolist() == label.tolist()  # mmseg's LoadAnnotations would wrap 300 -> 44

    from ovbench.evaluation import OpenVocabIoUMetric

    metric = OpenVocabIoUMetric(per_class=True)
    metric.dataset_meta = ds.metainfo
    pred = torch.from_numpy(np.where(label == 65535, 0, label))  # perfect where labelled
    metric.process({}, [{"pred_sem_seg": {"data": pred[None]}, "gt_sem_seg": {"data": torch.from_numpy(label)[None]}}])
    out = metric.compute_metrics(metric.results)
    assert out["mIoU"] == pytest.approx(100.0)
    assert metric.ignore_index == 65535


def test_default_loader_would_corrupt_wide_labels_so_it_is_not_the_default(tmp_path):
    _fake_ade847(tmp_path, [np.array([[300, 1], [2, 3]])])
    ds = ADE20K847Dataset(data_root=str(tmp_path),
                          pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), dict(type="PackSegInputs")])
    assert ds[0]["data_samples"].gt_sem_seg.data[0].tolist() == [[44, 1], [2, 3]]  # the uint8 wrap we guard against


def test_missing_label_folder_is_named(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(FileNotFoundError, match="annotations_detectron2_bg/val"):
        PascalVOC20bDataset(data_root=str(tmp_path), pipeline=[])


def test_prompt_groups_merge_by_max():
    from ovbench.models.segmentors import OVCostAggSegmentor

    model = OVCostAggSegmentor.__new__(OVCostAggSegmentor)
    torch.nn.Module.__init__(model)
    model._class_names = None
    model.set_vocabulary(["cat", "background"], {"background": ["sky", "wall", "road"]})
    names, groups = model.prompt_names()
    assert names == ("cat", "sky", "wall", "road")
    scores = torch.tensor([[[1.0], [0.2], [3.0], [-1.0]]])
    merged = OVCostAggSegmentor.merge_prompts(scores, groups)
    assert merged[0, :, 0].tolist() == [1.0, 3.0]


def test_bad_prompts_are_named(tmp_path):
    path = tmp_path / "v.json"
    path.write_text('{"classes": ["a"], "prompts": {"b": ["x"]}}')
    with pytest.raises(ValueError, match="prompts.b"):
        load_vocabulary(path)
