"""The ``ovbench`` command line: a thin front, no logic.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when chosen, so ``ovbench --help``
stays fast. Started as the console script (:mod:`ovbench_cli`), the package's
stack (shims, torch, mmseg registration) is loaded only after parsing, right
before the command runs; a command module must therefore not import torch,
mmengine's runner or mmseg at module level.

Errors: a wrong input (:class:`ovbench.errors.InputError`) is one ``error: ...``
line and exit code 2; any other exception is one line and exit code 1. The
Python traceback is shown only with ``--debug`` (anywhere on the line).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Dict, List, Optional, Tuple

from ovbench.errors import InputError

#: name -> (module, help)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "train": ("ovbench.train", "train a model from an mmengine config (mirrors mmseg tools/train.py)"),
    "env": ("ovbench.env", "print versions of the stack, the device and whether compiled mmcv ops exist"),
    "test": ("ovbench.evaluate", "evaluate a model on every evaluation set of its config (one row each)"),
    "run": ("ovbench.sweep.run", "run an ablation study from a YAML file (optuna)"),
    "worker": ("ovbench.sweep.worker", "join a running study as an extra worker"),
    "report": ("ovbench.report.cli", "render a study's results as tables, plots and panels"),
    "regress": ("ovbench.report.regress", "CI regression against the committed baseline"),
    "params": ("ovbench.params", "print trainable/free/total parameter counts for a config"),
    "data": ("ovbench.data.synth.cli", "generate or check datasets (e.g. `ovbench data synth --out DIR`)"),
    "pretrain-clip": ("ovbench.pretrain.train", "pretrain the tiny CLIP of the embedded benchmark"),
}


def build_parser(chosen: Optional[str] = None) -> argparse.ArgumentParser:
    """The full parser; only ``chosen``'s module is imported to add its real arguments."""
    parser = argparse.ArgumentParser(
        prog="ovbench",
        description="Benchmarking and ablation harness for open-vocabulary semantic segmentation.",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported to add its arguments.
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def parse(argv: List[str]) -> argparse.Namespace:
    """Parse a command line; imports only the chosen command's module (no torch, no mmseg)."""
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    return build_parser(chosen).parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = parse(argv)
    import ovbench

    ovbench.load()  # shims before any torchvision/mmseg import the command makes
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except InputError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # not an input ovbench checks: still one line, the traceback on request
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"error: {type(e).__name__}: {first}\n(unexpected; `ovbench --debug {' '.join(argv)}` shows the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
