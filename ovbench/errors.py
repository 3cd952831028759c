"""The one base class of errors that mean "the input is wrong", not "ovbench is broken".

Every command turns an :class:`InputError` into one ``error: ...`` line and
exit code 2 (``ovbench.cli``); anything else is a bug and keeps its traceback
under ``ovbench --debug``. Subclasses live next to the input they check
(``SpecError`` for ablation files, ``StorageError`` for optuna storages, ...).
This module imports nothing, so every layer may use it.
"""
from __future__ import annotations


class InputError(Exception):
    """A user input (file, URL, path, flag) is malformed or unusable; the message says what to do."""

    def __str__(self) -> str:
        # the message as written, also for subclasses that are KeyErrors too (KeyError's str() quotes it)
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()
