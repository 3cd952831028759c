"""argparse value types shared by the commands: a wrong flag value is argparse's usage error (one line,
exit code 2) that says what was expected, never a traceback from deeper down.

This module imports only the standard library, so a command module in any layer may use it.
"""
from __future__ import annotations

import argparse
import math
from typing import Callable

#: the seeds torch, numpy and Python's ``random`` all accept (mmengine and numpy refuse others mid-run)
MAX_SEED = 2**32 - 1


def seed(text: str) -> int:
    """``--seed``: an integer in [0, 2**32 - 1]."""
    return int_in_range(0, MAX_SEED)(text)


def int_in_range(low: int, high: int, note: str = "") -> Callable[[str], int]:
    """An integer in ``[low, high]``; ``note`` explains a special value (``0 = the machine's cores``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            extra = f" ({note})" if note else ""
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}]{extra}, got {text!r}")
        return value
    return parse


def positive(kind: type, what: str = "") -> Callable[[str], float]:
    """A positive finite ``kind`` (int or float); ``what`` names the unit (``seconds``)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            noun = f"number of {what}" if what else kind.__name__
            raise argparse.ArgumentTypeError(f"expected a positive {noun}, got {text!r}")
        return value
    return parse
