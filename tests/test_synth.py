"""The synthetic world: determinism, annotation consistency, splits, formats, cache and CLI."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ovbench  # noqa: F401
from ovbench.data.synth import render_scene
from ovbench.data.synth.captions import hard_negative
from ovbench.data.synth.render import class_info
from ovbench.data.synth.world import (
    all_classes,
    dataset_specs,
    held_out_of_pretraining,
    pretraining_classes,
    segmentation_unseen,
    vocabulary_json,
)
from ovbench.data.synth.writers import (
    IGNORE,
    decode_panoptic,
    ensure_synth_benchmark,
    generate_benchmark,
)

SCALE = 0.02  # 39 images in all


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_benchmark(out, seed=3, scale=SCALE)
    return out


def _pools():
    cls = all_classes()
    return [c.name for c in cls if not c.isthing], [c.name for c in cls if c.isthing]


def test_render_same_seed_same_bytes_other_seed_differs():
    stuff, things = _pools()
    a = render_scene(np.random.default_rng(7), 64, stuff, things)
    b = render_scene(np.random.default_rng(7), 64, stuff, things)
    c = render_scene(np.random.default_rng(8), 64, stuff, things)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.classes.tobytes() == b.classes.tobytes() and a.instances.tobytes() == b.instances.tobytes()
    assert a.image.tobytes() != c.image.tobytes()


def test_generated_benchmark_is_byte_identical_for_same_seed(bench, tmp_path):
    generate_benchmark(tmp_path, seed=3, scale=SCALE)
    assert _tree_digest(tmp_path) == _tree_digest(bench)
    other = tmp_path.parent / (tmp_path.name + "_seed4")
    generate_benchmark(other, seed=4, scale=SCALE)
    assert _tree_digest(other) != _tree_digest(bench)


def test_every_instance_pixel_carries_its_class():
    stuff, things = _pools()
    for seed in range(30):
        s = render_scene(np.random.default_rng(seed), 48, stuff, things, n_things=(2, 4))
        for inst, name, _ in s.things:
            m = s.instances == inst
            assert m.any()
            assert np.all(s.classes[m] == class_info(name).index)
        stuff_ids = {class_info(n).index for n in s.stuff}
        assert set(np.unique(s.classes[s.instances == 0]).tolist()) <= stuff_ids
        assert s.image.shape == (48, 48, 3) and s.image.dtype == np.uint8


def test_semantic_and_panoptic_annotations_agree(bench):
    for spec in dataset_specs(SCALE):
        root = bench / spec.name
        vocab = json.loads((root / "vocabulary.json").read_text())
        for split, count in spec.splits:
            pan = json.loads((root / f"panoptic_{split}.json").read_text())
            cats = {c["id"]: c for c in pan["categories"]}
            assert [c["name"] for c in pan["categories"]] == vocab["classes"]
            assert {c["name"] for c in pan["categories"] if c["isthing"]} == set(vocab["things"])
            assert len(pan["images"]) == len(pan["annotations"]) == count
            for img, ann in zip(pan["images"], pan["annotations"]):
                assert (root / img["file_name"]).is_file()
                label = np.array(Image.open(root / "ann_dir" / split / ann["file_name"]))
                ids = decode_panoptic(np.array(Image.open(root / "panoptic" / split / ann["file_name"])))
                segs = {s["id"]: s for s in ann["segments_info"]}
                assert set(np.unique(ids).tolist()) - {0} == set(segs)
                for sid, s in segs.items():
                    m = ids == sid
                    assert int(m.sum()) == s["area"]
                    assert np.all(label[m] == s["category_id"] - 1)  # same class in both formats
                # void in panoptic <=> ignore in semantic
                assert np.array_equal(ids == 0, label == IGNORE)
                things_per_cat = [s["category_id"] for s in segs.values() if cats[s["category_id"]]["isthing"]]
                stuff_per_cat = [s["category_id"] for s in segs.values() if not cats[s["category_id"]]["isthing"]]
                assert len(stuff_per_cat) == len(set(stuff_per_cat))  # one segment per stuff class
                assert all(c in cats for c in things_per_cat)


def test_vocabulary_and_splits():
    names = [c.name for c in all_classes()]
    assert len(names) >= 60 and len(set(names)) == len(names)
    unseen, held = set(segmentation_unseen()), set(held_out_of_pretraining())
    assert held < unseen and len(held) < len(unseen) / 2  # CLIP knows most segmentation-unseen classes
    assert held.isdisjoint(pretraining_classes())
    specs = dataset_specs()
    train, evals = specs[0], specs[1:]
    assert unseen.isdisjoint(train.classes) and unseen.isdisjoint(train.scene_classes)
    assert len(evals) >= 3 and len({len(s.classes) for s in evals}) == len(evals)
    assert any(s.domain_shift for s in evals)
    for s in evals:
        v = vocabulary_json(s)
        assert v["unseen"] and set(v["unseen"]) != set(v["classes"]), s.name
        assert set(v["unseen"]) == set(s.classes) & unseen


def test_vocabulary_files_load_through_ovsegdataset(bench):
    from ovbench.data import OVSegDataset

    ds = OVSegDataset(vocabulary="vocabulary.json", data_root=str(bench / "synth_large"),
                      data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"), pipeline=[])
    assert len(ds) == len(list((bench / "synth_large" / "img_dir" / "val").glob("*.png")))
    assert set(ds.metainfo["unseen_classes"]) == set(segmentation_unseen())


def test_hard_negatives_never_name_held_out_combinations():
    rng = np.random.default_rng(0)
    allowed = pretraining_classes()
    held = set(held_out_of_pretraining())
    for _ in range(300):
        phrases = [allowed[i] for i in rng.choice(len(allowed), 3, replace=False)]
        neg = hard_negative(phrases, rng)
        assert neg is not None and not held & set(neg)
        assert sum(a != b for a, b in zip(phrases, neg)) == 1


def test_cache_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OVBENCH_CACHE", str(tmp_path))
    first = ensure_synth_benchmark(scale=SCALE)
    assert first.parent == tmp_path / "synth" and (first / "manifest.json").is_file()
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert ensure_synth_benchmark(scale=SCALE) == first
    assert (first / "manifest.json").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("synth/*.tmp*"))


def test_cli_data_synth(tmp_path, capsys):
    from ovbench.cli import main

    assert main(["data", "synth", "--out", str(tmp_path), "--scale", str(SCALE), "--size", "32"]) == 0
    img = Image.open(next((tmp_path / "synth_small" / "img_dir" / "val").glob("*.png")))
    assert img.size == (32, 32)
    assert "wrote" in capsys.readouterr().out


def test_mmseg_config_builds_every_synth_dataset(bench):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)  # the pipeline's transforms live in mmseg's scope

    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / "configs/synth/_base_/synth_ov.py"))
    dataset_cfgs = [cfg.train_dataloader.dataset] + list(cfg.eval_datasets.values())
    assert len(dataset_cfgs) == 4
    for d in dataset_cfgs:
        d = d.copy()
        name = Path(d["data_root"]).name
        d["data_root"] = str(bench / name)
        ds = DATASETS.build(d)
        assert len(ds) > 0 and ds.metainfo["vocabulary_name"] == name
        sample = ds[0]
        assert sample["data_samples"].gt_sem_seg.data.shape[-2:] == (64, 64)


def test_a_complete_copy_written_meanwhile_by_another_process_is_kept(tmp_path, monkeypatch):
    """Two processes (ranks, parallel `ovbench train`s) generating the cache at once: the one finishing
    second drops its own copy instead of deleting the folder the first may already be reading."""
    from ovbench.data.synth import writers

    target = tmp_path / "synth"
    key = writers.cache_key(0, 64, 0.02)

    def generate_while_another_finishes(out, **kwargs):
        target.mkdir()
        (target / "in_use_by_the_other_process").write_text("")
        (target / writers.MANIFEST).write_text(json.dumps({"key": key}))
        Path(out).mkdir()
        (Path(out) / "ours").write_text("")

    monkeypatch.setattr(writers, "generate_benchmark", generate_while_another_finishes)
    assert writers.ensure_synth_benchmark(root=target, scale=0.02) == target
    assert (target / "in_use_by_the_other_process").exists() and not (target / "ours").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]  # our temporary copy is gone
