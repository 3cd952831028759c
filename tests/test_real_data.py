"""Real-data studies (issue 14): `ovbench run FILE --scale real` on the real datasets' layouts.

The miniature fixtures are written here, a few generated images per set, in the
layouts the real configs read (configs/_base_/datasets, docs/datasets.md):
ADE20K-847, PASCAL-Context-459 and VOC-20 for evaluation (CAT-Seg's layouts) and
COCO-Stuff-171 for training (mmseg's converter). The model is the real H-CLIP
ViT-B/16 config with random CLIP weights; a test-only config on top of it shrinks
what CPU time forbids: crop and resize to 64 px, 2 iterations, and five-class
vocabularies (the text tower encodes every class name each step; 847 + 459 + 171
names would take minutes). Layout, dataset classes, loaders, PEFT and the evaluation
path are the real ones.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT

SIZE = (48, 64)  # h, w of every fixture image
#: (folder under the data root, image dir, label dir, image suffix, label suffix, label dtype)
LAYOUTS = {
    "ade847": ("ADE20K_2021_17_01", "images/ADE/validation", "annotations_detectron2/validation", ".jpg", ".tif",
               np.uint16),
    "pc459": ("VOCdevkit/VOC2010", "JPEGImages", "annotations_detectron2/pc459_val", ".jpg", ".tif", np.uint16),
    "voc20": ("VOCdevkit/VOC2012", "JPEGImages", "annotations_detectron2/val", ".jpg", ".png", np.uint8),
    "coco171": ("coco_stuff164k", "images/train2017", "annotations/train2017", ".jpg", "_labelTrainIds.png",
                np.uint8),
}
FIVE = ["person", "bicycle", "car", "motorcycle", "airplane"]  # COCO-Stuff's first five classes

TEST_CONFIG = """
_base_ = ['{base}']
crop_size = (64, 64)
_mini = dict(name='mini', classes={five}, unseen=['airplane'])
model = dict(clip=dict(pretrained=None), data_preprocessor=dict(size=crop_size), test_cfg=dict(mode='whole'))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    metainfo=dict(classes={five}),
    pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
              dict(type='RandomCrop', crop_size=crop_size), dict(type='PackSegInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
_resize = dict(type='Resize', scale=(64, 64), keep_ratio=True)
_wide = [dict(type='LoadImageFromFile'), _resize, dict(type='LoadWideAnnotations'), dict(type='PackSegInputs')]
eval_datasets = dict(ade847=dict(vocabulary=_mini, pipeline=_wide), pc459=dict(vocabulary=_mini, pipeline=_wide),
                     voc20=dict(pipeline=[dict(type='LoadImageFromFile'), _resize, dict(type='LoadAnnotations'),
                                          dict(type='PackSegInputs')]))
train_cfg = dict(max_iters=2, val_interval=1000)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
"""

ABLATION = """
study: e2e
base_config: configs/synth/hclip.py
real_config: {real_config}
space:
  model.clip.peft.q: [32]
datasets: [synth_large]
real:
  space:
    model.clip.peft.q: [128, 256]
  datasets: [ade847, pc459, voc20]
  objective: {{metric: ade847/mIoU, direction: maximize}}
  executor: {{type: local, workers: 1, timeout_min: 20}}
"""


def write_set(root: Path, key: str, n: int = 2, n_classes: int = 5) -> Path:
    """``n`` images and labels of one set in its real layout; ids 0..n_classes-1 and the set's ignore value
    (each set its own random images)."""
    folder, img_dir, ann_dir, img_suffix, ann_suffix, dtype = LAYOUTS[key]
    rng = np.random.default_rng(list(LAYOUTS).index(key))
    ignore = 65535 if dtype == np.uint16 else 255
    for sub in (img_dir, ann_dir):
        (root / folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = rng.integers(0, n_classes, SIZE).astype(dtype)
        label[:4] = ignore
        img = rng.integers(0, 255, (*SIZE, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / folder / img_dir / f"{key}_{i:04d}{img_suffix}")
        Image.fromarray(label).save(root / folder / ann_dir / f"{key}_{i:04d}{ann_suffix}")
    return root / folder


def write_study(tmp_path: Path) -> Path:
    """The test-only real config (the shipped H-CLIP ViT-B/16 config, shrunk) and an ablation file on it."""
    base = REPO_ROOT / "configs" / "hclip" / "hclip_vitb16_coco-stuff171_384.py"
    config = tmp_path / "hclip_vitb16_tiny.py"
    config.write_text(TEST_CONFIG.format(base=base, five=FIVE))
    ablation = tmp_path / "e2e.yaml"
    ablation.write_text(ABLATION.format(real_config=config))
    return ablation


def ovbench(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ovbench_cli", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)


@pytest.fixture
def cli_env(tmp_path):
    return dict(os.environ, OVBENCH_DATA_ROOT=str(tmp_path / "unused"), PYTHONPATH=str(REPO_ROOT))


def test_missing_dataset_is_named_with_path_and_layout_and_creates_no_storage(tmp_path, cli_env):
    data = tmp_path / "data"
    write_set(data, "coco171")
    write_set(data, "pc459")
    voc = write_set(data, "voc20")
    (voc / "JPEGImages" / "voc20_0000.jpg").unlink()  # a label without its image
    work = tmp_path / "work"
    out = ovbench("run", str(write_study(tmp_path)), "--scale", "real", "--data-root", str(data),
                  "--work-dir", str(work), env=cli_env)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) == 2, out.stderr  # ADE-847 missing, VOC-20 incomplete; COCO-Stuff and PC-459 fine
    assert (f"dataset ade847: folder not found: {data / 'ADE20K_2021_17_01'}; expected images/ADE/validation/*.jpg "
            "with labels annotations_detectron2/validation/*.tif under it (docs/datasets.md)") in lines[0]
    assert f"dataset voc20 at {voc}: label {voc / 'annotations_detectron2/val/voc20_0000.png'} has no image" in lines[1]
    assert not work.exists()  # no study, no SQLite file, no work dir


def test_the_dry_run_counts_each_trials_own_training_length():
    """A study that sweeps train_cfg.max_iters trains different lengths: the plan sums them."""
    from ovbench.sweep.preflight import iterations_line, study_config, trial_iterations
    from ovbench.sweep.spec import load_spec

    spec = load_spec(REPO_ROOT / "ablations" / "train_length.yaml")
    per_trial = trial_iterations(spec, study_config(spec))
    assert per_trial == [200] * 5 + [400] * 5
    assert iterations_line(per_trial) == "iterations: 3000 (200 per trial x 5 + 400 per trial x 5)"
    assert iterations_line([200, None]) == "iterations: unknown (not iter-based)"


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path, cli_env):
    data = tmp_path / "data"
    write_set(data, "ade847")
    work = tmp_path / "work"
    out = ovbench("run", "ablations/block_size.yaml", "--scale", "real", "--dry-run", "--data-root", str(data),
                  "--work-dir", str(work), env=cli_env)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "study block_size-real (real scale): 12 trial(s)" in text  # 4 block sizes x 3 seeds
    assert f"config: {REPO_ROOT / 'configs/hclip/hclip_vitb16_coco-stuff171_384.py'}" in text
    assert f"  ade847: {data / 'ADE20K_2021_17_01'}\n" in text  # present: no mark
    assert f"  voc20: {data / 'VOCdevkit/VOC2012'}  (MISSING)" in text
    assert f"  train (COCOStuffDataset): {data / 'coco_stuff164k'}  (MISSING)" in text
    assert text.rstrip().endswith("6 dataset(s) MISSING: `ovbench run` without --dry-run would stop before "
                                  "creating the study (docs/datasets.md)")  # all but ade847
    assert "executor: local, 1 worker(s)" in text and "iterations: 960000 (80000 per trial x 12)" in text
    assert [line.split()[1] for line in text.splitlines() if line.startswith("    ") and "seed=0" in line] == [
        "model.clip.peft.q=32", "model.clip.peft.q=64", "model.clip.peft.q=128", "model.clip.peft.q=256"]
    assert not work.exists()


@pytest.mark.slow
def test_real_scale_study_on_real_layout_fixtures_runs_and_reports(tmp_path, cli_env):
    data = tmp_path / "data"
    for key in LAYOUTS:
        write_set(data, key, n=4 if key == "coco171" else 2)
    ablation, work = write_study(tmp_path), tmp_path / "work"
    start = time.time()
    out = ovbench("run", str(ablation), "--scale", "real", "--data-root", str(data), "--work-dir", str(work),
                  "--no-progress", env=cli_env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "study e2e-real: 2/2 complete" in out.stdout
    results = [json.loads(p.read_text()) for p in sorted(work.glob("**/result.json"))]
    assert [r["status"] for r in results] == ["ok", "ok"]
    for r in results:
        assert set(r["metrics"]) == {"ade847", "pc459", "voc20"}
        assert all(0 <= r["metrics"][s]["mIoU"] <= 100 for s in r["metrics"])
        assert r["cost"]["iters"] == 2
    configs = [(p.parent / "config.py").read_text() for p in sorted(work.glob("**/result.json"))]
    assert all(str(data / "ADE20K_2021_17_01") in c and "ViT-B-16" in c for c in configs)
    report = ovbench("report", "e2e-real", "--work-dir", str(work), "--out", str(tmp_path / "reports"),
                     "--format", "md", "csv", "--no-plots", env=cli_env)
    assert report.returncode == 0, report.stderr
    table = next((tmp_path / "reports" / "e2e-real").glob("*.csv")).read_text()
    assert "ade847" in table and "128" in table and "256" in table
    print(f"real-scale fixture study: {time.time() - start:.0f} s")  # wall time, reported in issue 14


def test_data_roots_follow_the_data_root_and_generated_sets_are_made_once(tmp_path, monkeypatch):
    from ovbench.data.roots import DATA_ROOT_ENV, data_root, point_dataset, resolve_root
    from ovbench.data.toy import TOY_VERSION

    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "env"))
    assert data_root() == tmp_path / "env" and data_root(str(tmp_path / "flag")) == tmp_path / "flag"
    root = tmp_path / "d"
    assert resolve_root("data/VOCdevkit/VOC2012", root) == root / "VOCdevkit" / "VOC2012"
    assert resolve_root("/abs/ADE", root) == Path("/abs/ADE")  # taken as written
    assert not (root / f"toy-v{TOY_VERSION}").exists()
    assert resolve_root(f"data/toy-v{TOY_VERSION}", root, generate=False) == root / f"toy-v{TOY_VERSION}"
    assert not root.exists()  # a dry run generates nothing
    toy = {"data_root": f"data/toy-v{TOY_VERSION}"}
    wrapped = {"type": "ConcatDataset", "datasets": [toy]}
    point_dataset(wrapped, root)
    assert toy["data_root"] == str(root / f"toy-v{TOY_VERSION}")
    assert (root / f"toy-v{TOY_VERSION}" / "vocabulary.json").is_file()
    assert [p.name for p in root.iterdir()] == [f"toy-v{TOY_VERSION}"]  # no temporary folder left
