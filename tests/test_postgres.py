"""PostgreSQL as users type it: ``--storage postgresql://user:pw@host/db`` with a private server.

Two ``ovbench run`` processes (the console script) share one study on a real
PostgreSQL 15 server started from Debian's binaries; every point completes
exactly once, ``ovbench report`` reads that storage, and the password appears
in no output line, log or report file. Missing server binaries fail the test
with the install command (see tests/postgres_server.py); it is never skipped.
"""
from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from postgres_server import PASSWORD, private_postgres

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
study: pg
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [4, 8, 12]
seeds: [0]
datasets: [toy]
overrides:
  train_cfg.max_iters: 2
  train_cfg.val_interval: 1000
  default_hooks.checkpoint.interval: 1000
  default_hooks.logger.interval: 1
work_dir: {work}
executor: {{type: local, workers: 1, timeout_min: 5}}
"""


def ovbench(*args: str) -> list:
    exe = shutil.which("ovbench") or str(Path(sys.executable).with_name("ovbench"))
    return [exe, *args]


@pytest.mark.slow
def test_two_runs_share_a_postgresql_study_and_report_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OVBENCH_DATA_ROOT", str(tmp_path / "data"))
    spec = tmp_path / "pg.yaml"
    spec.write_text(SPEC.format(work=tmp_path / "work"))
    with private_postgres() as url:
        cmd = ovbench("run", str(spec), "--storage", url, "--heartbeat", "1")
        first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(2)
        second = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        outs = [p.communicate(timeout=600)[0] for p in (first, second)]
        assert first.returncode == 0 and second.returncode == 0, outs

        study = optuna.load_study(storage=url, study_name="pg")
        trials = study.get_trials()
        assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials), outs
        assert set(collections.Counter(t.user_attrs["point_key"] for t in trials).values()) == {1}
        for out in outs:  # the summary names the storage, password masked
            assert "/3 complete" in out and "postgresql://ovbench:***@127.0.0.1" in out, out
        assert any("study pg: 3/3 complete" in out for out in outs), outs  # the last one to finish
        assert any("pg: 3/3 trial" in out for out in outs), outs  # its progress line counts the study
        ran = [re.search(r"this command \(pid \d+ on .+\) ran trial\(s\): (.*)", out).group(1) for out in outs]
        assert sorted(int(n) for r in ran for n in r.split(", ") if n != "none") == [0, 1, 2], ran

        assert study.metric_names == ["toy/mIoU"]  # what optuna-dashboard shows, through optuna's API
        for t in trials:
            assert isinstance(t.user_attrs["toy/mIoU"], float) and t.user_attrs["toy/mIoU"] == t.value
            assert isinstance(t.user_attrs["trainable_params"], int) and t.user_attrs["trainable_params"] > 0
            assert sorted(t.intermediate_values) == [1, 2], t.intermediate_values  # the loss every iteration

        rep = subprocess.run(ovbench("report", "pg", "--storage", url, "--out", str(tmp_path / "reports"),
                                     "--format", "md", "csv", "--no-plots"),
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        assert rep.returncode == 0, rep.stdout + rep.stderr
        assert "toy/mIoU" in rep.stdout and rep.stdout.count("\n| ") >= 3, rep.stdout

        bad = subprocess.run(ovbench("run", str(spec), "--storage", url.replace(PASSWORD, "wrong-pw")),
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and "password authentication failed" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and "wrong-pw" not in bad.stderr

    written = [p.read_text(errors="replace") for p in (tmp_path / "reports").rglob("*") if p.is_file()]
    logs = [p.read_text(errors="replace") for p in (tmp_path / "work").rglob("*.log")]
    for text in [*outs, rep.stdout, rep.stderr, *written, *logs]:
        assert PASSWORD not in text


def test_processes_opening_a_fresh_database_together_all_succeed():
    """Runs started together race to create optuna's tables on an empty database (PostgreSQL reports
    "... already exists"); every opener must still get the storage."""
    code = ("import sys, time; from ovbench.sweep import study as st; "
            "t = float(sys.argv[2]); time.sleep(max(0.0, t - time.time())); st.open_storage(sys.argv[1]); print('ok')")
    with private_postgres() as url:
        start = time.time() + 8.0  # past every child's import time: they open at once
        procs = [subprocess.Popen([sys.executable, "-c", code, url, str(start)], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(4)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 and out.strip().endswith("ok") for p, out in zip(procs, outs)), outs
    assert not any(PASSWORD in out for out in outs)
