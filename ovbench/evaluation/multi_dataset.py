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

from ovbench.errors import InputError

#: config key naming the evaluation sets: ``{name: dataset config dict}``.
EVAL_DATASETS_KEY = "eval_datasets"


class UnknownEvalSet(InputError, KeyError):
    """A name that is not an entry of the config's ``eval_datasets``."""


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
        raise UnknownEvalSet(
            f"unknown evaluation set(s) {unknown}; the config's '{EVAL_DATASETS_KEY}' declares {sorted(declared)}"
        )
    return {n: declared[n] for n in names}


def _numeric(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def with_output_dir(evaluator_cfg: Any, output_dir: str) -> Any:
    """A copy of ``evaluator_cfg`` whose IoU metrics write each raw prediction as a label PNG to
    ``output_dir`` (mmseg's ``IoUMetric(output_dir=...)``, what ``tools/test.py --out`` sets)."""
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import METRICS

    cfg = copy.deepcopy(evaluator_cfg)
    metrics = cfg if isinstance(cfg, list) else [cfg]  # test_evaluator: one metric config or a list
    found = False
    for metric in metrics:
        cls = METRICS.get(metric.get("type")) if isinstance(metric.get("type"), str) else metric.get("type")
        if isinstance(cls, type) and issubclass(cls, IoUMetric):
            metric["output_dir"] = output_dir
            found = True
    if not found:
        raise ValueError("writing raw predictions needs an IoUMetric-type test_evaluator (e.g. OpenVocabIoUMetric)")
    return cfg


def evaluate_datasets(
    runner: Any, loader_cfg: Mapping, evaluator_cfg: Any, datasets: Mapping[str, Mapping],
    output_root: Optional[str] = None, stats_file: Optional[str] = None,
) -> Dict[str, Dict[str, float]]:
    """Run ``runner.model`` over each dataset config; ``{set name: {metric: value}}``.

    With ``output_root``, each set's raw predictions go to ``output_root/<set name>/`` (sets
    share file names, so one folder would mix them). With ``stats_file``, the IoU and PQ metrics'
    per-image statistics of every set go to that ``.npz`` (:mod:`ovbench.evaluation.image_stats`).
    """
    import os.path as osp

    from mmengine.runner import TestLoop

    from ovbench.adapters.mmengine import set_test_loop
    from ovbench.evaluation.image_stats import collect, save_image_stats

    results: Dict[str, Dict[str, float]] = {}
    stats = {}
    for name, dataset_cfg in datasets.items():
        loader = copy.deepcopy(dict(loader_cfg))
        loader["dataset"] = copy.deepcopy(dataset_cfg)
        evaluator = copy.deepcopy(evaluator_cfg)
        if output_root is not None:
            evaluator = with_output_dir(evaluator, osp.join(output_root, name))
        loop = TestLoop(runner, loader, evaluator)
        set_test_loop(runner, loop)  # the runner's public test_dataloader/test_loop now mean this set
        metrics = loop.run()
        results[name] = {k: v for k, v in ((k, _numeric(v)) for k, v in metrics.items()) if v is not None}
        stats[name] = collect(loop.evaluator.metrics)
    if stats_file is not None and any(stats.values()):
        save_image_stats(stats_file, stats)
    return results
