"""A real SLURM: ``ablations/ci.yaml`` with ``--executor slurm`` on a private single-node cluster.

The cluster comes from ``tools/slurm-local.sh`` (Debian's ``slurmctld slurmd
slurm-client munge``; no cgroups, no accounting). Opt-in, as it takes minutes on
a loaded 2-core machine: ``make test-slurm`` (``pytest -m slurm``). Missing
packages fail the test with the install command.
"""
from __future__ import annotations

import collections
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ovbench.sweep.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "slurm-local.sh"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture
def slurm_cluster(tmp_path, monkeypatch):
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch") if not shutil.which(b)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install slurmctld slurmd slurm-client munge")
    state = tmp_path / "slurm"
    start = subprocess.run([str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=120)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        monkeypatch.setenv("SLURM_CONF", str(state / "slurm.conf"))
        yield state
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, timeout=60)


def test_ci_study_on_a_real_slurm_runs_each_point_once(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("OVBENCH_DATA_ROOT", str(tmp_path / "data"))
    work = tmp_path / "work"
    exe = shutil.which("ovbench") or str(Path(sys.executable).with_name("ovbench"))
    proc = subprocess.run([exe, "run", "ablations/ci.yaml", "--executor", "slurm", "--work-dir", str(work),
                           "--heartbeat", "2"], cwd=REPO, capture_output=True, text=True, timeout=1500,
                          env=dict(os.environ))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    study = optuna.load_study(storage=f"sqlite:///{work / 'optuna.db'}", study_name="ci")
    trials = study.get_trials()
    spec = load_spec(REPO / "ablations" / "ci.yaml")
    n = len(spec.seeds) * math.prod(len(v["choices"]) for v in spec.defining()["space"].values())  # 2 x 2 x 3 seeds
    assert len(trials) == n and all(t.state == TrialState.COMPLETE for t in trials), out
    assert set(collections.Counter(t.user_attrs["point_key"] for t in trials).values()) == {1}
    assert f"study ci: {n}/{n} complete" in out and out.count(": COMPLETE toy/mIoU=") == n, out
    assert "sacct" not in out, out  # progress comes from the study, not from submitit polling sacct
