"""Hooks the trial process adds to every config (this mmengine has no CheckInvalidLossHook)."""
from __future__ import annotations

import math
from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


class InvalidLossError(FloatingPointError):
    """The training loss became NaN or infinite: the trial fails instead of training on garbage."""


@HOOKS.register_module(force=True)
class FailOnInvalidLossHook(Hook):
    """Raise :class:`InvalidLossError` at the first non-finite loss (checked every ``interval`` iters)."""

    priority = "VERY_LOW"

    def __init__(self, interval: int = 1) -> None:
        self.interval = interval

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        if outputs is None or not self.every_n_train_iters(runner, self.interval):
            return
        loss = outputs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise InvalidLossError(f"loss is {float(loss)} at iteration {runner.iter + 1}")
