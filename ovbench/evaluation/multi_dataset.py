"""Evaluate one model on several evaluation sets: one row of metrics per set.

The open-vocabulary protocol trains once and tests on many vocabularies
(ADE-847/150, PC-459/59, VOC-20/20b; or the synthetic sets). Each set runs
through mmengine's ``TestLoop`` with its own dataset and a fresh evaluator, and
is made the runner's current test loop while it runs, so hooks that read
``runner.test_dataloader`` (e.g. ``VocabularyHook``) see the right vocabulary.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional

#: config key naming the evaluation sets: ``{name: dataset config dict}``.
EVAL_DATASETS_KEY = "eval_datasets"


def eval_datasets_of(cfg: Any, names: Optional[list] = None) -> Dict[str, dict]:
    """The evaluation sets a config declares (``eval_datasets``), or its test set alone.

    Raises a clear error for unknown names, listing the known ones.
    """
    declared = dict(cfg.get(EVAL_DATASETS_KEY) or {})
    if not declared:
        declared = {"test": cfg.test_dataloader.dataset}
    if not names:
        return declared
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise KeyError(
            f"unknown evaluation set(s) {unknown}; the config's '{EVAL_DATASETS_KEY}' declares {sorted(declared)}"
        )
    return {n: declared[n] for n in names}


def _numeric(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def evaluate_datasets(
    runner: Any, loader_cfg: Mapping, evaluator_cfg: Any, datasets: Mapping[str, Mapping]
) -> Dict[str, Dict[str, float]]:
    """Run ``runner.model`` over each dataset config; ``{set name: {metric: value}}``."""
    from mmengine.runner import TestLoop

    results: Dict[str, Dict[str, float]] = {}
    for name, dataset_cfg in datasets.items():
        loader = copy.deepcopy(dict(loader_cfg))
        loader["dataset"] = copy.deepcopy(dataset_cfg)
        loop = TestLoop(runner, loader, copy.deepcopy(evaluator_cfg))
        runner._test_loop = loop  # the runner's public test_dataloader/test_loop now mean this set
        metrics = loop.run()
        results[name] = {k: v for k, v in ((k, _numeric(v)) for k, v in metrics.items()) if v is not None}
    return results
