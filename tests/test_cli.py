"""The ovbench console script: help, env, and honest 'not yet implemented' answers."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from ovbench.cli import COMMANDS, main


def test_console_script_help():
    exe = shutil.which("ovbench") or str(__import__("pathlib").Path(sys.executable).with_name("ovbench"))
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert name in proc.stdout


def test_env_reports_the_stack(capsys):
    assert main(["env", "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    for key in ("torch", "mmsegmentation", "mmcv", "mmengine", "open_clip", "optuna", "device", "mmcv compiled ops"):
        assert info[key]


def test_unimplemented_commands_say_so(monkeypatch, capsys):
    """A command listed without a module answers honestly instead of pretending (exit 2)."""
    from ovbench import cli

    monkeypatch.setitem(cli.COMMANDS, "future", (None, "a command not built yet", "issue 99"))
    assert main(["future", "--any", "args"]) == 2
    err = capsys.readouterr().err
    assert "not yet implemented" in err and "issue 99" in err
