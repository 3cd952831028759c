"""benchmarks/recipe_change.py: two studies' committed trials paired by setting and seed."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_change.py"
spec = importlib.util.spec_from_file_location("recipe_change", SCRIPT)
rc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rc)

KEY, METRIC = "model.aggregator.cost_scale", "synth_large/mIoU_unseen"


def trials(rows):
    return pd.DataFrame([{"state": "COMPLETE", "seed": s, KEY: v, METRIC: m} for v, s, m in rows])


def test_settings_pair_by_value_and_seed_even_when_one_study_sweeps_only_whole_numbers():
    old = trials([(22.9, 0, 20.0), (22.9, 1, 21.0), (5.0, 0, 10.0), (5.0, 1, 12.0), (5.0, 2, 11.0)])
    new = trials([(5.0, 0, 13.0), (5.0, 1, 14.0), (5.0, 2, 12.0), (1.0, 0, 1.0)])  # alone it labels "5", "1"
    a, b = rc.paired_values(old, new, [KEY], METRIC)
    table = rc.rows(a, b)
    assert [r["setting"] for r in table] == ["cost_scale=5.0"]  # 1.0 is not in the old study: not compared
    row = table[0]
    assert row["seeds"] == [0, 1, 2]
    assert row["diff"].mean == pytest.approx((3 + 2 + 1) / 3)
    assert row["old"].mean == pytest.approx(11.0) and row["new"].mean == pytest.approx(13.0)
    assert row["sd_old"] == pytest.approx(1.0) and row["sd_new"] == pytest.approx(1.0)


def test_a_metric_missing_from_either_study_is_an_error_not_an_empty_table():
    old, new = trials([(5.0, 0, 1.0)]), trials([(5.0, 0, 2.0)])
    with pytest.raises(ValueError, match="no column"):
        rc.paired_values(old, new, [KEY], "synth_large/mIoU_typo")


def test_machine_lines_refuse_known_differences_and_warn_on_unrecorded_ones():
    a = "cpu (Intel(R) Xeon(R) Processor, x86_64 AVX512+AMX, 2 cores, torch threads=1)"
    b = "cpu (AMD EPYC 7B13, x86_64 AVX2, 2 cores, torch threads=1)"
    assert rc.device_problem([a], [a]) == ("", "")
    error, warning = rc.device_problem([a], [b])
    assert "different machine lines" in error and not warning
    error, warning = rc.device_problem(["cpu (x86_64, 2 cores)"], [a])
    assert not error and "do not name the processor" in warning


def test_a_study_re_run_on_a_new_version_pairs_with_its_moved_old_report(tmp_path):
    """block_size re-run on v3 against its v2 report moved to reports/v2: the same ablation file twice."""
    import subprocess
    import sys

    q, device = "model.clip.peft.q", "cpu (Some CPU, x86_64 AVX2, 2 cores, torch threads=1)"
    for folder, values in (("reports/v2", [10.0, 12.0, 11.0]), ("reports", [13.0, 14.0, 15.0])):
        out = tmp_path / folder / "block_size"
        out.mkdir(parents=True)
        pd.DataFrame([{"state": "COMPLETE", "seed": s, q: 32, METRIC: m, "device": device}
                      for s, m in enumerate(values)]).to_csv(out / "trials.csv", index=False)
    ablation = str(SCRIPT.parents[1] / "ablations" / "block_size.yaml")
    proc = subprocess.run([sys.executable, str(SCRIPT), ablation, ablation, "--reports", str(tmp_path / "reports"),
                           "--old-reports", str(tmp_path / "reports" / "v2")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "| q=32 | 3 | 11.00" in proc.stdout and "| 14.00 ± 2.48 | 3.00 ± 2.48 |" in proc.stdout, proc.stdout


def test_named_pairs_compare_studies_that_sweep_different_keys():
    old = trials([(22.9, 0, 20.0), (22.9, 1, 21.0), (22.9, 2, 19.0), (5.0, 0, 10.0)])
    new = pd.DataFrame([{"state": "COMPLETE", "seed": s, "model.aggregator": "one_stage", METRIC: m}
                        for s, m in [(0, 21.0), (1, 23.0), (2, 20.0)]])
    a = rc.study_values(old, [KEY], METRIC, "old")
    b = rc.study_values(new, ["model.aggregator"], METRIC, "new")
    pairs = rc.named_pairs(a, b, [("cost_scale=22.9", "aggregator=one_stage")])
    (row,) = rc.rows(a, b, pairs)
    assert row["setting"] == "aggregator=one_stage vs cost_scale=22.9" and row["seeds"] == [0, 1, 2]
    assert row["diff"].mean == pytest.approx((1 + 2 + 1) / 3)


def test_a_named_pair_with_an_unknown_label_is_an_error_that_lists_the_settings():
    a = rc.study_values(trials([(5.0, 0, 1.0)]), [KEY], METRIC, "old")
    with pytest.raises(ValueError, match="'cost_scale=6' is not a setting of the old study; its settings are: cost_scale=5"):
        rc.named_pairs(a, a, [("cost_scale=6", "cost_scale=5")])
