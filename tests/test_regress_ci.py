"""The CI regression check held to both sides with real training runs of ``ablations/ci.yaml``.

Each test runs ``ovbench regress`` against the committed ``reports/ci/baseline.json``
with a change injected into every process from outside (no production code knows
about it):

* another machine, simulated: ``ONEDNN_MAX_CPU_ISA=SSE41`` makes oneDNN run every
  convolution with its SSE4.1 kernels instead of the AVX2 / AVX-512 ones the CPU
  offers. Another vector width is another floating-point reduction order, which is
  what differs between CPUs of this project's kind (the measured cause of CI failing
  on another machine). The check must pass, and the numbers must really differ from
  the baseline. (Another thread count would do too, but 2 threads per trial on 2
  busy cores makes OpenMP spin for minutes.);
* a planted regression: a ``sitecustomize`` module on ``PYTHONPATH`` gives every SGD
  optimizer a learning rate 100x smaller. The check must fail and name the metric,
  its drop and the tolerance.

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

LR_CUT = """\
import torch.optim

_sgd_init = torch.optim.SGD.__init__


def _cut_lr(self, params, lr=1e-3, *args, **kwargs):
    _sgd_init(self, params, lr * 0.01, *args, **kwargs)


torch.optim.SGD.__init__ = _cut_lr
"""


def run_regress(tmp_path: Path, sitecustomize: str = "", **extra_env: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OVBENCH_DATA_ROOT=str(tmp_path / "data"), **extra_env)
    if sitecustomize:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(textwrap.dedent(sitecustomize))
        env["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
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


def test_another_cpus_kernels_move_the_numbers_but_not_the_verdict(tmp_path):
    proc = run_regress(tmp_path, ONEDNN_MAX_CPU_ISA="SSE41")
    current, base = current_values(tmp_path), baseline_values()
    assert set(current) == set(base), proc.stdout[-3000:] + proc.stderr[-3000:]
    moved = [k for k in base if abs(current[k] - base[k]) > 1e-6]
    assert moved, "SSE4.1 kernels gave the baseline's exact numbers: the simulation changed nothing"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 regression(s)" in proc.stdout


def test_a_learning_rate_cut_100x_trips_the_check(tmp_path):
    proc = run_regress(tmp_path, sitecustomize=LR_CUT)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "REGRESSION" in out and "toy/mIoU fell" in out and "beyond the tolerance" in out
    assert "--update-baseline" in out
