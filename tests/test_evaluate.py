"""Multi-dataset evaluation (`ovbench test`) and the alignment diagnostic."""
from __future__ import annotations

import json
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
