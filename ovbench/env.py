"""``ovbench env``: what the stack is, so a bug report or a cost table can say where it ran."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args: argparse.Namespace) -> int:
    from ovbench import compat

    info = compat.check_stack()
    info.update({f"shim: {k}": v for k, v in compat.STATUS.items()})
    if args.json:
        import json

        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0
