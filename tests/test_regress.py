"""``ovbench regress``'s rule on a study filled with known results (no training: claims + records).

The slow tests of tests/test_regress_ci.py hold the same rule to real training runs.
"""
from __future__ import annotations

import argparse
import json
import math

import pytest
from scipy.stats import t as student_t

from conftest import fill_study
from ovbench.report import regress
from ovbench.sweep import study as st
from ovbench.sweep.spec import load_spec

SPEC = """\
study: reg
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [8, 16]
seeds: [0, 1, 2]
datasets: [toy]
work_dir: {work}
"""
NOISE = {0: -1.0, 1: 0.0, 2: 1.0}  # seed -> offset: every setting's seeds have std exactly 1


def fake_result(point: dict) -> dict:
    miou = 50.0 + point["model.decode_head.channels"] + NOISE[point["seed"]]
    return {"status": "ok", "metrics": {"toy": {"mIoU": miou, "mIoU_unseen": miou - 10}},
            "cost": {"trainable_params": 1000 * point["model.decode_head.channels"], "flops": 1e6,
                     "train_time_s": 10.0 + point["seed"]},
            "device": "cpu", "git_commit": "abc"}


@pytest.fixture
def filled(tmp_path, monkeypatch):
    path, _, _ = fill_study(SPEC, tmp_path, fake_result)
    spec = load_spec(path)
    # regress looks for the hash-named study in its work dir: alias the filled one
    monkeypatch.setattr(st, "study_name_for", lambda s, new: s.study)
    return path, st.default_work_root(spec)


def _args(path, work, baseline, update=False):
    return argparse.Namespace(ablation=str(path), baseline=str(baseline), work_dir=str(work),
                              update_baseline=update, no_run=True, workers=None)


def _shift(baseline_path, setting, key, by):
    """Move the baseline's seed values of one key (a baseline higher than now = a drop now)."""
    data = json.loads(baseline_path.read_text())
    rec = data["settings"][setting][key]
    rec["values"] = [v + by for v in rec["values"]]
    baseline_path.write_text(json.dumps(data))


def expected_tolerance(n_tests: int, std: float = 1.0, df: int = 4, n: int = 3) -> float:
    return max(1.0, student_t.ppf(1 - 0.01 / n_tests, df) * std * math.sqrt(2 / n))


def test_baseline_keeps_every_seed_and_the_pooled_spread(filled, tmp_path):
    path, work = filled
    baseline = tmp_path / "baseline.json"
    assert regress.run(_args(path, work, baseline, update=True)) == 0
    data = json.loads(baseline.read_text())
    rec = data["settings"]["channels=8"]["toy/mIoU"]
    assert rec["values"] == [57.0, 58.0, 59.0] and rec["mean"] == pytest.approx(58.0)
    assert data["seeds"] == [0, 1, 2] and data["tolerances"]["metrics"] == {"alpha": 0.01, "floor": 1.0}
    spreads = regress.pooled_spreads(data["settings"], 0.01)
    # 2 settings x (3 - 1) = 4 degrees of freedom; 2 metrics x 2 settings = 4 comparisons
    assert spreads["toy/mIoU"].std == pytest.approx(1.0) and spreads["toy/mIoU"].df == 4
    assert spreads["toy/mIoU"].tolerance(3, 3, 1.0) == pytest.approx(expected_tolerance(4))


def test_noise_inside_the_spread_passes_and_a_real_drop_fails_readably(filled, tmp_path, capsys):
    path, work = filled
    baseline = tmp_path / "baseline.json"
    regress.run(_args(path, work, baseline, update=True))
    tol = expected_tolerance(4)  # about 6.2 points: t(4 df, 1 - 0.0025) = 5.6 times sqrt(2/3)
    assert regress.run(_args(path, work, baseline)) == 0
    out = capsys.readouterr().out
    assert "rule:" in out and "s = 1.00 (df 4)" in out and "3/3" in out

    _shift(baseline, "channels=8", "toy/mIoU", tol - 0.2)  # a drop just inside the tolerance
    assert regress.run(_args(path, work, baseline)) == 0
    _shift(baseline, "channels=8", "toy/mIoU", 0.4)  # now just beyond it
    capsys.readouterr()
    assert regress.run(_args(path, work, baseline)) == 1
    out = capsys.readouterr().out
    assert f"toy/mIoU fell {tol + 0.2:.2f} points" in out and f"tolerance {tol:.2f}" in out
    assert "--update-baseline" in out


def test_exact_costs_exact_times_informational_missing_setting_fails(filled, tmp_path):
    path, work = filled
    baseline = tmp_path / "baseline.json"
    regress.run(_args(path, work, baseline, update=True))
    good = baseline.read_text()

    _shift(baseline, "channels=16", "trainable_params", 100.0)
    assert regress.run(_args(path, work, baseline)) == 1

    baseline.write_text(good)
    _shift(baseline, "channels=16", "train_time_s", -9.0)  # now 10x slower: informational
    assert regress.run(_args(path, work, baseline)) == 0

    data = json.loads(good)
    data["settings"]["channels=32"] = data["settings"]["channels=16"]
    baseline.write_text(json.dumps(data))
    assert regress.run(_args(path, work, baseline)) == 1


def test_a_one_seed_baseline_is_refused_with_the_way_out(filled, tmp_path, capsys):
    path, work = filled
    baseline = tmp_path / "baseline.json"
    regress.run(_args(path, work, baseline, update=True))
    data = json.loads(baseline.read_text())
    for vals in data["settings"].values():
        for rec in vals.values():
            rec["values"] = rec["values"][:1]
    baseline.write_text(json.dumps(data))
    assert regress.run(_args(path, work, baseline)) == 2
    assert "fewer than 2 seeds" in capsys.readouterr().err
