"""mmengine internals ovbench must touch, in one place.

Multi-dataset evaluation (one row per evaluation set, as the open-vocabulary
protocol needs) runs a fresh ``TestLoop`` per set on one trained ``Runner``.
Hooks read the set being evaluated through ``runner.test_loop`` /
``runner.test_dataloader`` (e.g. ``VocabularyHook`` gives the model the set's
class names), and those properties return ``runner._test_loop``. mmengine 0.10
has no public setter for it and builds the loop only from the config once, so
the loop is swapped by writing the private attribute, here and nowhere else.
"""
from __future__ import annotations

from typing import Any


def set_test_loop(runner: Any, loop: Any) -> None:
    """Make ``loop`` the runner's current test loop (private write: mmengine has no public setter)."""
    runner._test_loop = loop
