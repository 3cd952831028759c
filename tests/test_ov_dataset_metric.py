"""OVSegDataset's vocabulary handling and OpenVocabIoUMetric's seen/unseen split."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ovbench.data.ov_dataset import OVSegDataset, load_vocabulary
from ovbench.evaluation.ov_iou_metric import OpenVocabIoUMetric, harmonic_mean


@pytest.mark.parametrize(
    "raw, key",
    [
        ([1, 2], "<root>"),
        ({"classes": []}, "classes"),
        ({"classes": ["a", "a"]}, "classes"),
        ({"classes": ["a", ""]}, "classes"),
        ({"classes": ["a", "b"], "unseen": ["c"]}, "unseen"),
        ({"classes": ["a", "b"], "unseen": "a"}, "unseen"),
        ({"classes": ["a", "b"], "palette": [[1, 2, 3]]}, "palette"),
    ],
)
def test_bad_vocabulary_names_file_and_key(tmp_path, raw, key):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError) as err:
        load_vocabulary(path)
    assert str(path) in str(err.value) and f"'{key}'" in str(err.value) and "Expected" in str(err.value)


def test_vocabulary_not_json_and_missing_file(tmp_path):
    bad = tmp_path / "v.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_vocabulary(bad)
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        load_vocabulary(tmp_path / "missing.json")


def test_dataset_reads_classes_and_split(toy_dataset):
    ds = OVSegDataset(
        vocabulary="vocabulary.json",
        data_root=str(toy_dataset),
        data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
        pipeline=[],
    )
    assert ds.metainfo["classes"] == ("background", "red square", "blue disc")
    assert ds.metainfo["unseen_classes"] == ("blue disc",)
    assert ds.metainfo["seen_classes"] == ("background", "red square")
    assert len(ds) == 16 and len(ds.metainfo["palette"]) == 3


def test_dataset_names_image_without_label(toy_dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(toy_dataset, root)
    next((root / "ann_dir" / "val").glob("*.png")).unlink()
    with pytest.raises(FileNotFoundError, match="have no label"):
        OVSegDataset(
            vocabulary="vocabulary.json",
            data_root=str(root),
            data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
            pipeline=[],
        )


def _sample(pred: np.ndarray, gt: np.ndarray) -> dict:
    return {
        "pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
        "gt_sem_seg": {"data": torch.from_numpy(gt)[None]},
    }


def test_metric_groups_mmseg_iou_by_split():
    metric = OpenVocabIoUMetric(per_class=True)
    metric.dataset_meta = {"classes": ("a", "b", "c"), "unseen_classes": ("c",)}
    gt = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 0]])
    metric.process([], [_sample(pred, gt)])
    out = metric.compute_metrics(metric.results)
    # By hand: a: inter 1 / union 4; b: 2 / 3; c: 2 / 4.
    assert out["IoU.a"] == pytest.approx(25.0)
    assert out["IoU.b"] == pytest.approx(66.67, abs=0.01)
    assert out["IoU.c"] == pytest.approx(50.0)
    seen = (25.0 + 200 / 3) / 2
    assert out["mIoU_seen"] == pytest.approx(seen, abs=0.01)
    assert out["mIoU_unseen"] == pytest.approx(50.0)
    assert out["hIoU"] == pytest.approx(2 * seen * 50 / (seen + 50), abs=0.01)
    assert out["mIoU"] == pytest.approx((25.0 + 200 / 3 + 50) / 3, abs=0.01)


def test_harmonic_mean_edges():
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert np.isnan(harmonic_mean(float("nan"), 3.0))
    assert harmonic_mean(40.0, 60.0) == pytest.approx(48.0)


def test_class_list_that_does_not_match_the_labels_is_refused_before_training(toy_dataset, tmp_path):
    import shutil

    root = tmp_path / "short_vocab"
    shutil.copytree(toy_dataset, root)
    (root / "vocabulary.json").write_text(json.dumps({"classes": ["background", "red square"]}))
    with pytest.raises(ValueError, match="does not match the annotations"):
        OVSegDataset(vocabulary="vocabulary.json", data_root=str(root),
                     data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"), pipeline=[])
