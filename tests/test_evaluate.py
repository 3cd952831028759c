"""Multi-dataset evaluation (`ovbench test`) and the alignment diagnostic."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from ovbench.models.segmentors.cost_agg_segmentor import alignment_stats


def test_alignment_stats_by_hand():
    # 2 classes on a 1x3 grid; pixel labels [0, 1, 255].
    cost = torch.tensor([[[0.9, 0.2, 0.5]], [[0.1, 0.6, 0.5]]])
    gt = torch.tensor([[0, 1, 255]])
    stats = alignment_stats(cost, gt)
    np.testing.assert_allclose(stats["count"], [1, 1])
    np.testing.assert_allclose(stats["sum_cos"], [0.9, 0.6])
    np.testing.assert_allclose(stats["sum_margin"], [0.8, 0.4])


def _write_config(tmp_path, data_a, data_b):
    cfg = f"""
_base_ = ['{REPO_ROOT / "configs" / "smoke" / "tiny_catseg.py"}']
model = dict(alignment=True)
test_evaluator = [dict(type='OpenVocabIoUMetric'), dict(type='AlignmentMetric')]
_pipe = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
eval_datasets = dict(
    _delete_=True,  # not the base's toy set
    toy3=dict(type='OVSegDataset', data_root='{data_a}', vocabulary='vocabulary.json',
              data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'), pipeline=_pipe),
    toy5=dict(type='OVSegDataset', data_root='{data_b}', vocabulary='vocabulary.json',
              data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'), pipeline=_pipe),
)
"""
    path = tmp_path / "multi.py"
    path.write_text(cfg)
    return path


def test_one_row_per_evaluation_set_with_alignment(toy_dataset, tmp_path):
    from ovbench.evaluate import evaluate_config, format_table

    bigger = tmp_path / "toy5"
    shutil.copytree(toy_dataset, bigger)
    (bigger / "vocabulary.json").write_text(json.dumps(
        {"classes": ["background", "red square", "blue disc", "green cube", "yellow star"],
         "unseen": ["blue disc", "green cube", "yellow star"]}))
    config = _write_config(tmp_path, toy_dataset, bigger)
    opts = {f"{k}.dataset.data_root": str(toy_dataset) for k in ("val_dataloader", "test_dataloader")}
    results = evaluate_config(str(config), None, None, str(tmp_path / "wd"), opts)
    assert set(results) == {"toy3", "toy5"}
    for row in results.values():
        assert {"mIoU", "mIoU_unseen", "align_cos", "align_margin", "align_cos_unseen"} <= set(row)
        assert -1.0 <= row["align_cos"] <= 1.0
    assert (tmp_path / "wd" / "eval_results.csv").is_file()
    assert "toy5" in format_table(results)

    only = evaluate_config(str(config), None, ["toy5"], str(tmp_path / "wd2"), opts)
    assert set(only) == {"toy5"}
    with pytest.raises(KeyError, match="declares"):
        evaluate_config(str(config), None, ["ade847"], str(tmp_path / "wd3"), opts)


def test_missing_checkpoint_is_named(tmp_path):
    from ovbench.evaluate import CheckpointError, evaluate_config

    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.pth"):
        evaluate_config(str(REPO_ROOT / "configs" / "smoke" / "tiny_catseg.py"), str(tmp_path / "nope.pth"))


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"", b"\x80\x04\x95garbage",
                                     __import__("pickle").dumps(__import__("collections").Counter("ab"))])
def test_non_checkpoint_is_refused_without_unsafe_advice_or_files(tmp_path, monkeypatch, capsys, content):
    """``ovbench test CONFIG FILE`` with a file that is not a checkpoint: one line, exit 2, no work dir,
    and never the advice to load it unsafely (a pickle may run code)."""
    from ovbench.cli import main

    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(content)
    assert main(["test", str(REPO_ROOT / "configs" / "smoke" / "tiny_fcn.py"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "is not a checkpoint that can be loaded safely" in err and "weights_only" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth"]  # nothing created
    assert main(["test", str(REPO_ROOT / "configs" / "smoke" / "tiny_fcn.py"), str(tmp_path / "gone.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_out_and_show_dir_write_raw_and_painted_predictions_per_set(toy_dataset, tmp_path):
    """`ovbench test --out/--show-dir` as mmseg's tools/test.py: label PNGs per set, painted images."""
    from ovbench.cli import main

    bigger = tmp_path / "toy5"
    shutil.copytree(toy_dataset, bigger)
    config = _write_config(tmp_path, toy_dataset, bigger)
    images = sorted(p.stem for p in (toy_dataset / "img_dir" / "val").iterdir())
    out, show = tmp_path / "raw", tmp_path / "painted"
    assert main(["test", str(config), "--work-dir", str(tmp_path / "wd"), "--out", str(out), "--show-dir",
                 str(show), "--cfg-options", "default_hooks.visualization.interval=1"]) == 0
    for name in ("toy3", "toy5"):
        assert sorted(p.stem for p in (out / name).glob("*.png")) == images
    for name in ("toy3", "toy5"):  # every image of both sets, none overwritten
        assert len(list((show / name).glob("*.png"))) == len(images), list(show.rglob("*"))


@pytest.mark.slow
def test_launcher_pytorch_evaluates_on_two_gloo_processes(toy_dataset, tmp_path):
    """`ovbench test --launcher pytorch` under torchrun: both ranks evaluate, rank 0 writes the results."""
    import subprocess
    import sys

    config = _write_config(tmp_path, toy_dataset, toy_dataset)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "ovbench.cli",
           "test", str(config), "--work-dir", str(tmp_path / "wd"), "--launcher", "pytorch", "--datasets", "toy3"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "Distributed launcher: pytorch" in out and "Distributed training: True" in out, out[-3000:]
    rows = json.loads((tmp_path / "wd" / "eval_results.json").read_text())
    assert set(rows) == {"toy3"} and 0.0 <= rows["toy3"]["mIoU"] <= 100.0
    table_rows = [line for line in proc.stdout.splitlines() if re.match(r"^\|?\s*toy3\s+\|?\s*-?[0-9]", line)]
    assert len(table_rows) == 1, proc.stdout  # one table: rank 0 alone prints and writes
