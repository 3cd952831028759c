"""A trial's training loss as optuna intermediate values, so dashboards draw learning curves.

The trial process has no storage connection; its log does have mmengine's
``Iter(train) [ i/N] ... loss: x`` lines. The worker that runs the trial reads
the lines added since its last look (at each heartbeat, and once when the trial
ends) and reports each as the intermediate value of step ``i`` through optuna's
public storage API. optuna-dashboard shows them as the trial's learning curve.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict

import optuna

_LOSS_RE = re.compile(rb"Iter\(train\) \[\s*(\d+)/\d+\][^\n]*?\sloss: ([-+0-9.eE]+|nan|inf)")


def parse_losses(text: bytes) -> Dict[int, float]:
    """``{iteration: loss}`` for every finite ``Iter(train)`` loss in ``text``."""
    out: Dict[int, float] = {}
    for step, loss in _LOSS_RE.findall(text):
        value = float(loss)
        if math.isfinite(value):
            out[int(step)] = value
    return out


class LossCurve:
    """Reports the new ``Iter(train)`` losses of one trial's log as its intermediate values."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, log: Path):
        self.storage, self.trial_id, self.log = storage, trial_id, Path(log)
        self.offset = 0  # bytes of the log already read (only whole lines)

    def report(self) -> int:
        """Read the log's new complete lines and report their losses; returns how many were reported."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return 0
        end = chunk.rfind(b"\n") + 1  # leave a half-written last line for the next look
        self.offset += end
        losses = parse_losses(chunk[:end])
        for step, value in sorted(losses.items()):
            self.storage.set_trial_intermediate_value(self.trial_id, step, value)
        return len(losses)
