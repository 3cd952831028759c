"""A setting's label (``channels=8, lr=0.01``): how reports name a point of a study's space.

The same label is the key of an ablation file's ``paper:`` figures and the value
of its ``reference:``, so the file (checked here, in the sweep layer) and the
report (:mod:`ovbench.report.tables`) must spell it the same way.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, Mapping, Sequence


def short_names(params: Sequence[str]) -> Dict[str, str]:
    """``model.decode_head.channels`` -> ``channels`` (longer suffixes where two keys would clash)."""
    out = {}
    for p in params:
        parts = p.split(".")
        n = 1
        while n < len(parts) and sum(q.split(".")[-n:] == parts[-n:] for q in params) > 1:
            n += 1
        out[p] = ".".join(parts[-n:])
    return out


def setting_label(row: Mapping[str, Any], params: Sequence[str]) -> str:
    """``channels=8, lr=0.01``: the row label of a setting (and the key of the paper's figures)."""
    names = short_names(params)
    return ", ".join(f"{names[p]}={row[p]}" for p in params) or "default"


def grid_labels(options: Mapping[str, Sequence[Any]]) -> List[str]:
    """Every setting's label of a finite space ``{param: options}`` (lists print as their text)."""
    params = list(options)
    shown = {p: [str(v) if isinstance(v, (list, dict)) else v for v in options[p]] for p in params}
    return [setting_label(dict(zip(params, combo)), params) for combo in itertools.product(*shown.values())]
