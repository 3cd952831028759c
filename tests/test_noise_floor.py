"""benchmarks/noise_floor.py: the instruction-set check (a stand-in for a second processor)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "noise_floor.py"
spec = importlib.util.spec_from_file_location("noise_floor", SCRIPT)
nf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nf)

METRIC = "synth_large/mIoU_unseen"


def cpu_capability(extra_env: dict) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **extra_env),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_avx2_environment_holds_pytorch_kernels_to_avx2():
    native = cpu_capability({})
    if native not in ("AVX2", "AVX512"):
        pytest.skip(f"this processor's kernels are {native}: nothing to hold back")
    assert cpu_capability(nf.AVX2_ENV) == "AVX2"


def test_the_isa_check_pairs_each_seed_with_the_studys_own_trial(capsys):
    df = pd.DataFrame([{"state": "COMPLETE", "seed": s, METRIC: v} for s, v in [(0, 20.0), (1, 24.0), (2, 22.0)]])
    labels = ["peft=hclip"] * 3
    avx2 = {seed: {"metrics": {"synth_large": {"mIoU_unseen": v}}} for seed, v in [(0, 21.0), (1, 23.0), (2, 22.0)]}
    nf.print_isa_check(df, labels, "peft=hclip", avx2, [METRIC])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {METRIC}"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["22.00", "22.00", "+1.00 -1.00 +0.00"]
    assert cells[5:8] == ["1.00", "1.00", "2.00"]  # largest |difference|, sd of differences, seed sd
