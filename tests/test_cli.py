"""The ovbench console script: help, env, errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

from ovbench.cli import COMMANDS, main


def test_console_script_help():
    exe = shutil.which("ovbench") or str(__import__("pathlib").Path(sys.executable).with_name("ovbench"))
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


HEAVY = ("torch", "torchvision", "mmseg", "mmcv", "open_clip")


def test_help_is_fast_and_loads_no_ml_stack():
    """`ovbench [CMD] --help` parses without torch/mmseg: fast, and nothing heavy in sys.modules."""
    exe = shutil.which("ovbench") or str(__import__("pathlib").Path(sys.executable).with_name("ovbench"))
    for name in ["", *COMMANDS]:
        start = time.perf_counter()
        proc = subprocess.run([exe, *([name] if name else []), "--help"], capture_output=True, text=True, timeout=60)
        took = time.perf_counter() - start
        assert proc.returncode == 0, proc.stderr
        assert took < 3.0, f"`ovbench {name} --help` took {took:.1f} s"
    probe = ("import json, sys, ovbench_cli\n"
             f"for name in {list(COMMANDS)!r}:\n"
             "    try: ovbench_cli.main([name, '--help'])\n"
             "    except SystemExit: pass\n"
             f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_a_command_that_runs_loads_the_stack_first():
    """After parsing, the console script applies the shims and registers ovbench before the command runs."""
    probe = ("import json, sys, ovbench_cli\n"
             "ovbench_cli.main(['env', '--json'])\n"
             "from mmseg.registry import DATASETS, MODELS\n"
             "print(json.dumps([DATASETS.get('OVSegDataset') is not None, MODELS.get('OVCLIP') is not None]))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [True, True]


def test_env_reports_the_stack(capsys):
    assert main(["env", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    for key in ("torch", "mmsegmentation", "mmcv", "mmengine", "open_clip", "optuna", "device", "mmcv compiled ops"):
        assert info[key]
