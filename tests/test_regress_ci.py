"""The CI regression check held to both sides with real training runs of ``ablations/ci.yaml``.

Each test runs ``ovbench regress`` against the committed ``reports/ci/baseline.json``
with a change injected into every process through a ``sitecustomize`` module on
``PYTHONPATH`` (no production code knows about it):

* another machine, simulated: every trial computes with 2 threads instead of the
  baseline's 1, which changes the floating-point reduction order of every
  convolution and so the training path (the measured cause of CI failing on other
  CPUs). The check must pass, and the numbers must really differ from the baseline;
* a planted regression: every SGD optimizer gets a learning rate 100x smaller. The
  check must fail and name the metric, its drop and the tolerance.

About 3 minutes each on 2 cores (12 short trials), hence ``slow``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

TWO_THREADS = """\
import os
os.environ["OMP_NUM_THREADS"] = "2"  # read when torch loads its OpenMP runtime, after this module
"""
LR_CUT = """\
import torch.optim

_sgd_init = torch.optim.SGD.__init__


def _cut_lr(self, params, lr=1e-3, *args, **kwargs):
    _sgd_init(self, params, lr * 0.01, *args, **kwargs)


torch.optim.SGD.__init__ = _cut_lr
"""


def run_regress(tmp_path: Path, sitecustomize: str) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(sitecustomize))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               OVBENCH_DATA_DIR=str(tmp_path / "data"))
    cmd = [sys.executable, "-m", "ovbench.cli", "regress", "--work-dir", str(tmp_path / "work")]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)


def current_values(tmp_path: Path) -> dict:
    """{(setting, seed): toy/mIoU} of the run, read back from the trials' result.json."""
    out = {}
    for path in (tmp_path / "work").rglob("result.json"):
        result = json.loads(path.read_text())
        if result.get("status") == "ok":
            params = result["params"]
            key = (params["model.decode_head.channels"], params["optim_wrapper.optimizer.lr"], result["seed"])
            out[key] = result["metrics"]["toy"]["mIoU"]
    return out


def baseline_values() -> dict:
    data = json.loads((REPO_ROOT / "reports" / "ci" / "baseline.json").read_text())
    out = {}
    for setting, vals in data["settings"].items():
        parts = dict(p.split("=") for p in setting.split(", "))
        for seed, v in zip(data["seeds"], vals["toy/mIoU"]["values"]):
            out[(int(parts["channels"]), float(parts["lr"]), seed)] = v
    return out


def test_another_thread_count_moves_the_numbers_but_not_the_verdict(tmp_path):
    proc = run_regress(tmp_path, TWO_THREADS)
    current, base = current_values(tmp_path), baseline_values()
    assert set(current) == set(base), proc.stdout[-3000:] + proc.stderr[-3000:]
    moved = [k for k in base if abs(current[k] - base[k]) > 1e-6]
    assert moved, "2 threads gave the baseline's exact numbers: the simulation changed nothing"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 regression(s)" in proc.stdout


def test_a_learning_rate_cut_100x_trips_the_check(tmp_path):
    proc = run_regress(tmp_path, LR_CUT)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "REGRESSION" in out and "toy/mIoU fell" in out and "beyond the tolerance" in out
    assert "--update-baseline" in out
