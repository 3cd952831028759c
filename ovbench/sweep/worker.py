"""``ovbench worker FILE --storage URL``: join a study another ``ovbench run`` created (e.g. on another machine).

Same loop as ``ovbench run`` (claims are exactly-once through the storage), but
it never creates the study: a worker pointed at the wrong storage fails loudly.
"""
from __future__ import annotations

import argparse

from ovbench.sweep import run as _run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _run.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _run.run(args, create=False)  # a missing storage or study is a StorageError: exit 2
