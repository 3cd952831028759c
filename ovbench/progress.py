"""Progress reporting that suits both a terminal and a log file.

A tqdm bar redraws itself with carriage returns several times a second: fine
on a terminal, a flood in a CI log, a Slurm ``.out`` file or ``nohup.out``.
So :func:`progress_bar` gives tqdm only when the stream is a terminal, and
otherwise a :class:`LineProgress` that prints one plain line (count, rate,
ETA, postfix) at most every ``interval_s`` seconds and on close.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Optional, TextIO


def _hms(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LineProgress:
    """The subset of tqdm's API ovbench uses (update, write, set_postfix_str, close), as plain lines."""

    def __init__(self, total: Optional[int], desc: str, unit: str = "it", initial: int = 0,
                 file: Optional[TextIO] = None, interval_s: float = 30.0) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = initial
        self.file = file if file is not None else sys.stderr
        self.interval_s = interval_s
        self.postfix = ""
        self._t0 = self._last = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self._t0
        rate = (self.n - self._start) / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: {self.n}/{self.total} {self.unit}" if self.total else f"{self.desc}: {self.n} {self.unit}"
        eta = ""
        if self.total and rate > 0:
            eta = f", eta {_hms((self.total - self.n) / rate)}"
        tail = f" [{self.postfix}]" if self.postfix else ""
        return f"{head} (elapsed {_hms(elapsed)}{eta}){tail}"

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval_s:
            self._last = now
            print(self.line(), file=self.file, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        self._emit(force=self.total is not None and self.n >= self.total)

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s
        self._emit()

    def set_postfix(self, **kwargs: Any) -> None:
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in kwargs.items()))

    def write(self, s: str) -> None:
        print(s, file=self.file, flush=True)

    def close(self) -> None:
        if self.total is None or self.n < self.total:
            self._emit(force=True)


def progress_bar(total: Optional[int], desc: str, unit: str = "it", initial: int = 0,
                 file: Optional[TextIO] = None, interval_s: float = 30.0) -> Any:
    """A tqdm bar on a terminal, else a :class:`LineProgress` (one line per ``interval_s``)."""
    file = file if file is not None else sys.stderr
    isatty = getattr(file, "isatty", None)
    if callable(isatty) and isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=file)
    return LineProgress(total, desc, unit=unit, initial=initial, file=file, interval_s=interval_s)
