"""Panoptic data layer: datasets (synthetic + real layouts) and the two transforms."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.registry import DATASETS
from PIL import Image

from ovbench.data.panoptic_transforms import id_to_rgb, rgb_to_id
from ovbench.data.synth.writers import ensure_synth_benchmark

AUG_PIPELINE = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadPanopticAnnotations"),
    dict(type="RandomResize", scale=(96, 96), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(40, 40)),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackPanopticInputs"),
]
TEST_PIPELINE = [dict(type="LoadImageFromFile"), dict(type="LoadPanopticAnnotations"), dict(type="PackPanopticInputs")]


@pytest.fixture(scope="module")
def synth_root() -> Path:
    return ensure_synth_benchmark(scale=0.02)


def synth_panoptic(root: Path, name: str, split: str = "val", pipeline=None, **kw):
    return DATASETS.build(dict(
        type="OVPanopticDataset", data_root=str(root / name), ann_file=f"panoptic_{split}.json",
        vocabulary="vocabulary.json", data_prefix=dict(img_path="", seg_map_path=f"panoptic/{split}"),
        pipeline=pipeline or TEST_PIPELINE, **kw))


def check_consistent(sample) -> None:
    """Every pixel of a listed segment carries its category in gt_sem_seg; void <-> ignore."""
    pan = sample.gt_panoptic_seg.data[0].numpy()
    sem = sample.gt_sem_seg.data[0].numpy()
    assert sample.gt_panoptic_seg.data.dtype == torch.int64 and sample.gt_sem_seg.data.dtype == torch.int64
    assert pan.shape == sem.shape
    infos = sample.gt_panoptic_seg.segments_info
    assert sorted(s["id"] for s in infos) == sorted(set(np.unique(pan).tolist()) - {0})
    for s in infos:
        assert set(s) == {"id", "category", "iscrowd", "isthing"}
        assert np.all(sem[pan == s["id"]] == s["category"])
    assert np.all(sem[pan == 0] == 255)


@pytest.mark.parametrize("name", ["synth_large", "synth_small", "synth_medium_shift"])
def test_synth_semantic_map_equals_the_semantic_labels(synth_root, name):
    """gt_sem_seg derived from the panoptic PNG equals the benchmark's ann_dir label, pixel for pixel."""
    ds = synth_panoptic(synth_root, name)
    vocab = json.loads((synth_root / name / "vocabulary.json").read_text())
    assert ds.metainfo["thing_classes"] == tuple(c for c in vocab["classes"] if c in vocab["things"])
    assert ds.metainfo["unseen_classes"] == tuple(c for c in vocab["classes"] if c in vocab["unseen"])
    assert len(ds) == len(list((synth_root / name / "img_dir" / "val").glob("*.png")))
    for i in range(len(ds)):
        out = ds[i]
        sample = out["data_samples"]
        sem_label = np.asarray(Image.open(Path(sample.img_path.replace("img_dir", "ann_dir"))))
        np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), sem_label)
        check_consistent(sample)
        for s in sample.gt_panoptic_seg.segments_info:
            assert s["isthing"] == int(vocab["classes"][s["category"]] in vocab["things"])
        assert out["inputs"].shape[1:] == sample.gt_sem_seg.data.shape[1:]


def test_augmentations_move_both_maps_together(synth_root):
    import random

    ds = synth_panoptic(synth_root, "synth_large", pipeline=AUG_PIPELINE)
    dropped = 0
    for seed in range(12):
        np.random.seed(seed)
        random.seed(seed)
        sample = ds[seed % len(ds)]["data_samples"]
        assert tuple(sample.gt_panoptic_seg.data.shape[1:]) == (40, 40)
        check_consistent(sample)  # also: segments removed by the crop are not listed
        dropped += len(ds.get_data_info(seed % len(ds))["segments_info"]) - len(sample.gt_panoptic_seg.segments_info)
    assert dropped > 0, "the crops never removed a segment: the drop path was not exercised"


def test_training_split_and_vocabulary_from_json(synth_root):
    ds = synth_panoptic(synth_root, "synth_train", split="train")
    cats = json.loads((synth_root / "synth_train" / "panoptic_train.json").read_text())["categories"]
    derived = DATASETS.build(dict(
        type="OVPanopticDataset", data_root=str(synth_root / "synth_train"), ann_file="panoptic_train.json",
        data_prefix=dict(img_path="", seg_map_path="panoptic/train"), pipeline=TEST_PIPELINE))
    assert derived.metainfo["classes"] == tuple(c["name"] for c in sorted(cats, key=lambda c: c["id"]))
    assert derived.metainfo["thing_classes"] == ds.metainfo["thing_classes"]
    assert derived.metainfo["unseen_classes"] == ()
    a, b = ds[0]["data_samples"], derived[0]["data_samples"]
    assert torch.equal(a.gt_sem_seg.data, b.gt_sem_seg.data)


# --- fake trees of the real layouts ---------------------------------------------------------------

def write_panoptic_tree(root: Path, img_rel, png_dir: str, json_rel: str, categories, n: int = 3, seed: int = 0,
                        image_entry=None, png_name=None):
    """A tiny COCO-panoptic tree: n 16x16 images, segments of random categories, one crowd, void border."""
    rng = np.random.default_rng(seed)
    images, annotations, truth = [], [], []
    for k in range(n):
        ids = np.zeros((16, 16), np.int64)
        infos = []
        for j, (y, x) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)]):
            sid = int(rng.integers(1, 2 ** 24 - 1))  # COCO ids are large, arbitrary numbers
            cat = categories[int(rng.integers(len(categories)))]
            ids[y:y + 8, x:x + 8] = sid
            infos.append({"id": sid, "category_id": cat["id"], "iscrowd": int(j == 3), "area": 64,
                          "bbox": [x, y, 8, 8]})
        ids[0, :] = 0  # void row
        name = png_name(k) if png_name else f"{k:06d}.png"
        img_name = image_entry(k)
        (root / png_dir).mkdir(parents=True, exist_ok=True)
        Image.fromarray(id_to_rgb(ids)).save(root / png_dir / name)
        img_path = root / img_rel(img_name)
        img_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(img_path, format="PNG")
        images.append({"id": k, "file_name": img_name, "height": 16, "width": 16})
        annotations.append({"image_id": k, "file_name": name, "segments_info": infos})
        truth.append((ids, infos))
    (root / json_rel).parent.mkdir(parents=True, exist_ok=True)
    (root / json_rel).write_text(json.dumps({"images": images, "annotations": annotations,
                                             "categories": categories}))
    return truth


COCO_CATS = [{"id": 1, "name": "person", "isthing": 1}, {"id": 44, "name": "bottle", "isthing": 1},
             {"id": 184, "name": "tree-merged", "isthing": 0}, {"id": 200, "name": "rug-merged", "isthing": 0}]


def check_against_truth(ds, truth, categories):
    names = ds.metainfo["classes"]
    by_id = {c["id"]: c for c in categories}
    assert len(ds) == len(truth)
    for i, (ids, infos) in enumerate(truth):
        sample = ds[i]["data_samples"]
        np.testing.assert_array_equal(sample.gt_panoptic_seg.data[0].numpy(), ids)
        got = {s["id"]: s for s in sample.gt_panoptic_seg.segments_info}
        for s in infos:
            cat = by_id[s["category_id"]]
            assert names[got[s["id"]]["category"]] == cat["name"]
            assert got[s["id"]]["isthing"] == cat["isthing"]
            assert got[s["id"]]["iscrowd"] == s["iscrowd"]
        check_consistent(sample)


def test_coco_layout(tmp_path):
    truth = write_panoptic_tree(tmp_path, lambda n: f"val2017/{n}", "panoptic_val2017",
                                "annotations/panoptic_val2017.json", COCO_CATS,
                                image_entry=lambda k: f"{k:012d}.jpg", png_name=lambda k: f"{k:012d}.png")
    ds = DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), split="val",
                             pipeline=TEST_PIPELINE))
    assert ds.metainfo["classes"] == ("person", "bottle", "tree-merged", "rug-merged")  # id order, 0-based
    assert ds.metainfo["thing_classes"] == ("person", "bottle")
    check_against_truth(ds, truth, COCO_CATS)


def test_coco_layout_with_an_open_vocabulary_file(tmp_path):
    """Names, not ids, decide the index: a vocabulary in another order with an unseen class."""
    truth = write_panoptic_tree(tmp_path, lambda n: f"val2017/{n}", "panoptic_val2017",
                                "annotations/panoptic_val2017.json", COCO_CATS, image_entry=lambda k: f"{k}.jpg")
    vocab = {"name": "coco-ov", "classes": ["rug-merged", "bottle", "cat", "person", "tree-merged"],
             "unseen": ["bottle"], "things": ["bottle", "cat", "person"]}
    ds = DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), vocabulary=vocab,
                             pipeline=TEST_PIPELINE))
    assert ds.metainfo["unseen_classes"] == ("bottle",)
    assert ds.metainfo["thing_classes"] == ("bottle", "cat", "person")
    check_against_truth(ds, truth, COCO_CATS)


def test_ade20k_layout(tmp_path):
    cats = [{"id": i, "name": n, "isthing": t} for i, (n, t) in
            enumerate([("wall", 0), ("building, edifice", 0), ("bed", 1), ("windowpane, window", 1)])]
    truth = write_panoptic_tree(tmp_path, lambda n: f"images/validation/{n}", "ade20k_panoptic_val",
                                "ade20k_panoptic_val.json", cats, image_entry=lambda k: f"ADE_val_{k + 1:08d}.jpg",
                                png_name=lambda k: f"ADE_val_{k + 1:08d}.png")
    ds = DATASETS.build(dict(type="ADE20KPanopticDataset", data_root=str(tmp_path), split="val",
                             pipeline=TEST_PIPELINE))
    assert ds.metainfo["thing_classes"] == ("bed", "windowpane, window")
    check_against_truth(ds, truth, cats)


def test_cityscapes_layout(tmp_path):
    cats = [{"id": 7, "name": "road", "isthing": 0}, {"id": 24, "name": "person", "isthing": 1},
            {"id": 26, "name": "car", "isthing": 1}]
    stems = ["frankfurt_000000_000294", "lindau_000001_000019", "munster_000002_000019"]

    def img_rel(name):  # leftImg8bit/<split>/<city>/<name>
        return f"leftImg8bit/val/{name.split('_')[0]}/{name}"

    truth = write_panoptic_tree(tmp_path, img_rel, "gtFine/cityscapes_panoptic_val",
                                "gtFine/cityscapes_panoptic_val.json", cats,
                                image_entry=lambda k: f"{stems[k]}_leftImg8bit.png",
                                png_name=lambda k: f"{stems[k]}_gtFine_panoptic.png")
    ds = DATASETS.build(dict(type="CityscapesPanopticDataset", data_root=str(tmp_path), split="val",
                             pipeline=TEST_PIPELINE))
    assert ds.get_data_info(1)["img_path"].endswith("leftImg8bit/val/lindau/lindau_000001_000019_leftImg8bit.png")
    check_against_truth(ds, truth, cats)
    # cityscapesScripts JSONs without images[].file_name: derived from the annotation's PNG name
    raw = json.loads((tmp_path / "gtFine/cityscapes_panoptic_val.json").read_text())
    for img in raw["images"]:
        del img["file_name"]
    (tmp_path / "gtFine/cityscapes_panoptic_val.json").write_text(json.dumps(raw))
    ds2 = DATASETS.build(dict(type="CityscapesPanopticDataset", data_root=str(tmp_path), pipeline=TEST_PIPELINE))
    assert [ds2.get_data_info(i)["img_path"] for i in range(3)] == [ds.get_data_info(i)["img_path"] for i in range(3)]


# --- errors -----------------------------------------------------------------------------------------

def test_unknown_category_is_refused_or_made_void(tmp_path):
    truth = write_panoptic_tree(tmp_path, lambda n: f"val2017/{n}", "panoptic_val2017",
                                "annotations/panoptic_val2017.json", COCO_CATS, image_entry=lambda k: f"{k}.jpg")
    vocab = {"name": "no-rug", "classes": ["person", "bottle", "tree-merged"]}
    with pytest.raises(ValueError, match=r"panoptic_val2017\.json.*categories\[3\]\.name 'rug-merged'.*no-rug"):
        DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), vocabulary=vocab,
                            pipeline=TEST_PIPELINE))
    ds = DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), vocabulary=vocab,
                             unknown_categories="void", pipeline=TEST_PIPELINE))
    n_void_segments = 0
    for i, (ids, infos) in enumerate(truth):
        sample = ds[i]["data_samples"]
        pan = sample.gt_panoptic_seg.data[0].numpy()
        for s in infos:
            if s["category_id"] == 200:
                n_void_segments += 1
                assert np.all(pan[ids == s["id"]] == 0)
        check_consistent(sample)
    assert n_void_segments > 0


def test_png_ids_missing_from_json_fail_at_construction(tmp_path):
    write_panoptic_tree(tmp_path, lambda n: f"val2017/{n}", "panoptic_val2017",
                        "annotations/panoptic_val2017.json", COCO_CATS, image_entry=lambda k: f"{k}.jpg")
    path = tmp_path / "annotations/panoptic_val2017.json"
    raw = json.loads(path.read_text())
    raw["annotations"][0]["segments_info"].pop(0)
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"000000\.png holds segment id"):
        DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), pipeline=TEST_PIPELINE))
    ds = DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), check_labels=0,
                             pipeline=TEST_PIPELINE))
    with pytest.raises(ValueError, match="has no segments_info entry"):
        ds[0]


def test_bad_json_and_category_ids(tmp_path):
    with pytest.raises(FileNotFoundError, match="panoptic annotation file not found"):
        DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), pipeline=TEST_PIPELINE))
    write_panoptic_tree(tmp_path, lambda n: f"val2017/{n}", "panoptic_val2017",
                        "annotations/panoptic_val2017.json", COCO_CATS, image_entry=lambda k: f"{k}.jpg")
    path = tmp_path / "annotations/panoptic_val2017.json"
    raw = json.loads(path.read_text())
    raw["annotations"][1]["segments_info"][0]["category_id"] = 999
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"annotations\[1\].*category_id 999"):
        DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), pipeline=TEST_PIPELINE))
    del raw["categories"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="'categories' missing"):
        DATASETS.build(dict(type="COCOPanopticDataset", data_root=str(tmp_path), pipeline=TEST_PIPELINE))


def test_rgb_id_round_trip():
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 2 ** 24 - 1, 12345678]])
    np.testing.assert_array_equal(rgb_to_id(id_to_rgb(ids)), ids)


# --- the embedded benchmark's panoptic config ------------------------------------------------------

def test_synth_panoptic_config_loads_and_builds(synth_root, tmp_path):
    from mmengine import Config
    from mmengine.evaluator import Evaluator

    config = Path(__file__).resolve().parents[1] / "configs/synth/_base_/synth_panoptic.py"
    cfg = Config.fromfile(str(config))

    def rerooted(ds):
        ds = dict(ds)
        ds["data_root"] = ds["data_root"].replace(cfg.synth_root, str(synth_root))
        return ds

    assert set(cfg.eval_datasets) == {"synth_large", "synth_medium_shift", "synth_small"}
    for dataset_cfg in [cfg.train_dataloader.dataset, cfg.test_dataloader.dataset, *cfg.eval_datasets.values()]:
        ds = DATASETS.build(rerooted(dataset_cfg))
        assert "thing_classes" in ds.metainfo
        check_consistent(ds[0]["data_samples"])
    evaluator = Evaluator(cfg.test_evaluator_with_oracles)
    prefixes = [m.prefix for m in evaluator.metrics]
    assert prefixes == [None, None, "oracle_masks", "oracle_masks", "oracle_classes", "oracle_classes"]
    assert [m.pred_key for m in evaluator.metrics][2:] == [
        "pred_sem_seg_oracle_masks", "pred_panoptic_seg_oracle_masks",
        "pred_sem_seg_oracle_classes", "pred_panoptic_seg_oracle_classes"]
    # a derived config picks the oracle evaluators up through the base variable
    child = tmp_path / "child.py"
    child.write_text(f"_base_ = [{str(config)!r}]\ntest_evaluator = {{{{_base_.test_evaluator_with_oracles}}}}\n")
    assert Config.fromfile(str(child)).test_evaluator == cfg.test_evaluator_with_oracles


def test_vocabulary_things_key(synth_root):
    from ovbench.data.ov_dataset import load_vocabulary

    vocab = json.loads((synth_root / "synth_large" / "vocabulary.json").read_text())
    meta = load_vocabulary(vocab).metainfo()
    assert meta["thing_classes"] == tuple(c for c in vocab["classes"] if c in vocab["things"])
    assert 0 < len(meta["thing_classes"]) < len(vocab["classes"])
    assert "thing_classes" not in load_vocabulary({"classes": ["a", "b"]}).metainfo()  # unknown, not "all stuff"
    assert load_vocabulary({"classes": ["a", "b"], "things": []}).metainfo()["thing_classes"] == ()
    with pytest.raises(ValueError, match=r"key 'things': names not in 'classes': \['c'\]"):
        load_vocabulary({"classes": ["a", "b"], "things": ["c"]})
    with pytest.raises(ValueError, match=r"key 'things': must be a list of class names"):
        load_vocabulary({"classes": ["a", "b"], "things": "a"})
    # the semantic dataset of the same folder carries thing_classes too
    ds = DATASETS.build(dict(type="OVSegDataset", data_root=str(synth_root / "synth_large"),
                             vocabulary="vocabulary.json",
                             data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"), pipeline=[]))
    assert ds.metainfo["thing_classes"] == meta["thing_classes"]


def test_preflight_finds_images_named_by_the_annotation_file(synth_root, tmp_path):
    """The embedded sets' COCO JSON names images under img_dir/<split>/, not beside the labels: the data
    check (run before every study) must follow images[].file_name, and still name a missing image."""
    import shutil

    from ovbench.data.check import DatasetMissing, check_datasets

    def cfg(root):
        return dict(type="OVPanopticDataset", data_root=str(root / "synth_large"), ann_file="panoptic_val.json",
                    vocabulary="vocabulary.json", data_prefix=dict(img_path="", seg_map_path="panoptic/val"),
                    pipeline=[])

    check_datasets({"synth_large": cfg(synth_root)})  # the fisa_bottleneck sets
    copy = tmp_path / "synth_large"
    shutil.copytree(synth_root / "synth_large", copy)
    first = sorted((copy / "img_dir" / "val").glob("*.png"))[0]
    first.unlink()
    with pytest.raises(DatasetMissing, match=first.name):
        check_datasets({"synth_large": cfg(tmp_path)})
