"""Checking one value of an ablation file: the problem collector, type tests, the swept values
(lists, named choices, ranges) and whether a value fits the config key it replaces."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Optional, Sequence, Tuple

from ovbench.sweep.schema import MAX_SEED, NAMED_KEY, RANGE_KEYS, SCALARS, ParamSpec, Problem


class Checker:
    """Collects problems for one file; ``add`` looks up the line of a key path."""

    def __init__(self, file: str, lines: Dict[Tuple[str, ...], int]):
        self.file, self.lines, self.problems = file, lines, []  # type: ignore[var-annotated]

    def add(self, path: Tuple[str, ...], message: str) -> None:
        line = None
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        self.problems.append(Problem(self.file, ".".join(path), message, line))


def type_name(value: Any) -> str:
    return type(value).__name__


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_finite_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


def has_nan(value: Any) -> bool:
    """Whether a value holds NaN anywhere: no config means NaN, and a trial would silently train on it.
    (An infinity may be meant, e.g. ``orth_lambda: .inf`` is hard orthogonality; see :func:`check_key`.)"""
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (list, tuple)):
        return any(has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(has_nan(v) for v in value.values())
    return False


def is_seed(v: Any) -> bool:
    return is_int(v) and 0 <= v <= MAX_SEED


def _compatible(base: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``base`` in a config (ints may stand for floats)."""
    if base is None:
        return True
    if value is None:  # None may disable a component (a dict or list), never stand for a number or name
        return isinstance(base, (dict, list, tuple))
    if isinstance(base, bool):
        return isinstance(value, bool)
    if is_int(base):
        return is_int(value)
    if isinstance(base, float):
        return is_int(value) or isinstance(value, float)
    if isinstance(base, str):
        return isinstance(value, str)
    if isinstance(base, (list, tuple)):
        return isinstance(value, (list, tuple))
    if isinstance(base, dict):
        return isinstance(value, dict)
    return True


_MISSING = object()


def lookup(cfg: Any, dotted: str) -> Any:
    """The value at a dotted key (list indices as digits), or ``_MISSING``."""
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif hasattr(node, "keys") and part in node:
            node = node[part]
        else:
            return _MISSING
    return node




def check_key(chk: Checker, path: Tuple[str, ...], dotted: str, values: Sequence[Any], base_cfg: Any) -> None:
    """A dotted key must exist in the base config and each value must fit the existing type."""
    if base_cfg is None:
        return
    current = lookup(base_cfg, dotted)
    if current is _MISSING:
        chk.add(path, "key does not exist in the base config (with the overrides applied); expected an "
                "existing dotted key, e.g. model.decode_head.channels")
        return
    for v in values:
        if not _compatible(current, v):
            chk.add(path, f"wrong type: value {v!r} is {type_name(v)}, but the base config has "
                    f"{type_name(current)} ({current!r})")
        elif isinstance(v, float) and math.isinf(v) and is_finite_number(current):
            chk.add(path, f"infinite value where the base config has the finite number {current!r}; "
                    "expected a finite number")




def check_param(chk: Checker, path: Tuple[str, ...], key: str, value: Any, sampler: str) -> Optional[ParamSpec]:
    """A list of choices (any sampler) or a {low, high, log, step, type} range (tpe/random)."""
    if isinstance(value, list):
        if not value:
            chk.add(path, "empty list of values; expected at least one value")
            return None
        bad = [v for v in value if not isinstance(v, SCALARS) and not isinstance(v, list)]
        if bad:
            chk.add(path, f"values must be scalars or lists, got {type_name(bad[0])}")
            return None
        if has_nan(value):
            chk.add(path, "NaN value; expected numbers")
            return None
        seen = [json.dumps(v, sort_keys=True) for v in value]
        if len(set(seen)) != len(seen):
            chk.add(path, "duplicate values; each value must appear once")
            return None
        return ParamSpec(key, choices=tuple(value))
    if isinstance(value, dict) and set(value) == {NAMED_KEY}:
        named = value[NAMED_KEY]
        if not isinstance(named, dict) or not named:
            chk.add(path + (NAMED_KEY,), "expected a non-empty mapping of label -> value")
            return None
        if not all(isinstance(k, str) for k in named):
            chk.add(path + (NAMED_KEY,), "labels must be strings")
            return None
        if has_nan(list(named.values())):
            chk.add(path + (NAMED_KEY,), "NaN value; expected numbers")
            return None
        return ParamSpec(key, choices=tuple(named.values()), labels=tuple(named))
    if isinstance(value, dict):
        unknown = [k for k in value if k not in RANGE_KEYS]
        if unknown:
            chk.add(path + (str(unknown[0]),), f"unknown range key; expected {', '.join(RANGE_KEYS)} "
                    f"(or {{{NAMED_KEY}: {{label: value}}}} for named choices)")
            return None
        if sampler == "grid":
            chk.add(path, "a range needs sampler tpe or random; grid needs an explicit list of values")
            return None
        return _check_range(chk, path, key, value)
    chk.add(path, f"expected a list of values (or a {{low, high}} range), got {type_name(value)}")
    return None


def _check_range(chk: Checker, path: Tuple[str, ...], key: str, value: Dict[str, Any]) -> Optional[ParamSpec]:
    """``{low, high, log, step, type}``: finite bounds, low <= high, a positive step that fits the type."""
    low, high, log, step = value.get("low"), value.get("high"), value.get("log", False), value.get("step")
    if not all(is_finite_number(v) for v in (low, high)):
        chk.add(path, f"expected finite numbers 'low' and 'high', got {low!r} and {high!r}")
        return None
    if low > high:
        chk.add(path, f"low ({low}) is greater than high ({high})")
        return None
    if not isinstance(log, bool):
        chk.add(path + ("log",), f"expected true or false, got {log!r}")
        return None
    if log and low <= 0:
        chk.add(path, "log range needs low > 0")
        return None
    kind = value.get("type") or ("int" if is_int(low) and is_int(high) else "float")
    if kind not in ("int", "float"):
        chk.add(path + ("type",), f"expected 'int' or 'float', got {kind!r}")
        return None
    if kind == "int" and not (is_int(low) and is_int(high)):
        chk.add(path, f"an int range needs integer 'low' and 'high', got {low!r} and {high!r}")
        return None
    if step is not None and (not is_finite_number(step) or step <= 0 or (kind == "int" and not is_int(step))):
        chk.add(path + ("step",), f"expected a positive {'integer' if kind == 'int' else 'number'}, got {step!r}")
        return None
    if step is not None and log and not (kind == "int" and step == 1):
        chk.add(path + ("step",), "a log range cannot have a step (optuna samples it continuously); remove one")
        return None
    return ParamSpec(key, low=low, high=high, log=log, step=step, kind=kind)
