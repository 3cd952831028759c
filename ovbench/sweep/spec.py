"""Ablation files (``ablations/*.yaml``): YAML -> one validated :class:`AblationSpec`.

Nothing runs until the whole file is valid, and a user fixing a file should see
every problem at once, so validation collects :class:`Problem` s (file, line,
key, what was expected) and raises one :class:`SpecError` listing them all. The
keys are :data:`ovbench.sweep.schema.SCHEMA` (users: docs/sweeps.md).

A file runs at one of two scales: ``embedded`` (its ``base_config``) or, with
``ovbench run --scale real``, ``real``: its ``real_config``, with the keys under
``real:`` replacing the file's, as a study of its own (``<study>-real``). Both
are validated by the same checks.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ovbench.sweep.schema import (  # noqa: F401  (re-exported: the names other modules import from here)
    COST_METRICS, DATASET_METRICS, EVALUATOR_METRICS, EXECUTOR_KEYS, EXECUTORS, KEY_FORMS, LOCK_SUFFIX, MAX_WORKERS,
    REAL_SUFFIX, REQUIRED_KEYS, SAMPLERS, SCALED_KEYS, SCALES, TOP_KEYS, AblationSpec, ExecutorSpec, ParamSpec,
    Problem, SpecError, resolve_path, storage_url_problem, study_name_problem,
)
from ovbench.sweep.spec_values import (
    Checker, check_key, check_param, has_nan, is_finite_number, is_int, is_seed, type_name,
)
from ovbench.sweep.labels import grid_labels
from ovbench.sweep.yaml_file import key_lines, parse, read_text


def load_spec(path: str | os.PathLike, check_config: bool = True, scale: str = "embedded") -> AblationSpec:
    """Read and validate an ablation file at ``scale``; raise :class:`SpecError` listing every problem."""
    file = str(path)
    data, root = parse(file, read_text(file))
    if not isinstance(data, dict):
        raise SpecError([Problem(file, "", f"expected a mapping of keys at the top level, got {type_name(data)}", 1)])
    lines, duplicates = key_lines(root)
    chk = Checker(file, lines)
    for key_path, line in duplicates:
        chk.problems.append(Problem(file, ".".join(key_path), "duplicate key (YAML would silently keep the last "
                                    "one); expected each key once", line))
    _check_real(data, chk)
    if scale == "real":
        data = _at_real_scale(file, data, chk)
    spec = _build(file, data, chk, check_config)
    if chk.problems:
        raise SpecError(chk.problems)
    assert spec is not None
    spec.scale = scale
    return spec


def _check_real(data: Dict[str, Any], chk: Checker) -> None:
    """``real:`` may only replace the keys marked ``scaled`` in the schema, and needs a ``real_config``."""
    real = data.get("real")
    if real is None:
        return
    if not isinstance(real, dict):
        chk.add(("real",), f"expected a mapping of keys replaced at --scale real ({', '.join(SCALED_KEYS)}), "
                f"got {type_name(real)}")
        return
    for key in real:
        if key not in SCALED_KEYS:
            chk.add(("real", str(key)), f"not replaceable at real scale; expected one of: {', '.join(SCALED_KEYS)}")
    if data.get("real_config") is None:
        chk.add(("real",), "needs real_config: the real-scale config the keys apply to")


def _at_real_scale(file: str, data: Dict[str, Any], chk: Checker) -> Dict[str, Any]:
    """The file as the real scale sees it: ``real_config`` as the base config, ``real:``'s keys replacing
    the file's, ``-real`` added to the study name; problems under ``real:`` keep their lines."""
    if not isinstance(data.get("real_config"), str):
        raise SpecError([Problem(file, "real_config", "missing; --scale real runs the file's real_config (expected "
                                 "a path to the real-scale mmengine config)", chk.lines.get(("real_config",)))])
    real = data.get("real") if isinstance(data.get("real"), dict) else {}
    for path, line in list(chk.lines.items()):
        if path[:1] == ("real",) and len(path) > 1:
            chk.lines[path[1:]] = line
    chk.lines[("base_config",)] = chk.lines.get(("real_config",), 0)
    scaled = {k: v for k, v in data.items() if k != "real"}
    scaled.update({k: v for k, v in real.items() if k in SCALED_KEYS})
    scaled["base_config"] = data["real_config"]
    stem = data.get("study") if isinstance(data.get("study"), str) else Path(file).stem
    scaled["study"] = f"{stem}{REAL_SUFFIX}"
    return scaled



def _build(file: str, data: Dict[str, Any], chk: Checker, check_config: bool) -> Optional[AblationSpec]:
    """Validate each section, collecting problems; return the spec (meaningful only if no problems)."""
    for key in data:
        if key not in TOP_KEYS:
            close = difflib.get_close_matches(str(key), TOP_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            chk.add((str(key),), f"unknown key{hint}; expected one of: {', '.join(TOP_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            chk.problems.append(Problem(file, key, "required key is missing", None))
    for key in [k for k in data if k in KEY_FORMS and data[k] is None]:
        chk.add((key,), f"got null; expected {KEY_FORMS[key]} (remove the key for its default)")
        del data[key]
    sampler = _check_sampler(data, chk)
    base_cfg = _check_base_config(data, chk, check_config)
    overrides = _check_overrides(data, chk, base_cfg)
    merged = _merged(base_cfg, overrides)
    space = _check_space(data, chk, sampler, merged)
    seeds = _check_seeds(data, chk)
    dsets = _check_datasets(data, chk, merged)
    metric, direction = _check_objective(data, chk, dsets, merged)
    executor = _check_executor(data, chk)
    n_trials = _check_n_trials(data, chk, sampler, space)
    for key in ("study", "description", "storage", "work_dir", "real_config"):
        if data.get(key) is not None and not isinstance(data[key], str):
            chk.add((key,), f"expected a string, got {type_name(data[key])}")
    real = data.get("real_config")
    if isinstance(real, str) and not resolve_path(real).is_file():
        chk.add(("real_config",), f"file not found: {real}")
    storage = data.get("storage")
    if isinstance(storage, str) and (problem := storage_url_problem(storage)):
        chk.add(("storage",), problem)
    if data.get("paper") is not None and not isinstance(data["paper"], dict):
        chk.add(("paper",), f"expected a mapping (setting -> metric -> value), got {type_name(data['paper'])}")
    sampler_seed = data.get("sampler_seed", 0)
    if not is_seed(sampler_seed):
        chk.add(("sampler_seed",), f"expected {KEY_FORMS['sampler_seed']}, got {sampler_seed!r}")
        sampler_seed = 0
    paper = data.get("paper") if isinstance(data.get("paper"), dict) else {}
    reference = _check_reference(data, chk, space)
    study = data.get("study") or Path(file).stem
    if isinstance(study, str) and (problem := study_name_problem(study)):
        chk.add(("study",), problem + ("" if data.get("study") else " (the default is the file's stem; set 'study:')"))
    return AblationSpec(
        path=file, study=str(study), base_config=str(data.get("base_config", "")), space=space,
        datasets=dsets, description=str(data.get("description") or ""), real_config=real,
        sampler=sampler, sampler_seed=sampler_seed, n_trials=n_trials, seeds=seeds,
        objective_metric=metric, direction=direction,
        overrides=overrides, executor=executor, storage=storage, work_dir=data.get("work_dir"),
        paper=paper, reference=reference,
    )


def _check_reference(data: Dict[str, Any], chk: Checker, space: Dict[str, ParamSpec]) -> Optional[str]:
    """``reference:`` names one setting of the space as reports label it (``q=128``); a finite space's
    labels are all known here, so a typo is caught before any trial runs."""
    ref = data.get("reference")
    if ref is None:
        return None
    if not isinstance(ref, str):
        chk.add(("reference",), f"expected a setting label such as 'q=128', got {type_name(ref)}")
        return None
    if space and all(p.kind == "choice" for p in space.values()):
        labels = grid_labels({k: p.options() for k, p in space.items()})
        if ref not in labels:
            chk.add(("reference",), f"{ref!r} is not a setting of the space; expected one of: {'; '.join(labels)}")
            return None
    return ref


def _check_sampler(data: Dict[str, Any], chk: Checker) -> str:
    sampler = data.get("sampler", "grid")
    if sampler not in SAMPLERS:
        chk.add(("sampler",), f"unknown sampler {sampler!r}; expected one of: {', '.join(SAMPLERS)}")
        return "grid"
    return sampler


def _merged(base_cfg: Any, overrides: Dict[str, Any]) -> Any:
    """Base config with the overrides applied: swept keys may live in a dict an override sets."""
    if base_cfg is None or not overrides:
        return base_cfg
    import copy

    merged = copy.deepcopy(base_cfg)
    try:
        merged.merge_from_dict(overrides)
    except Exception:  # a bad override is reported by _check_overrides; check against the base
        return base_cfg
    return merged


def _check_base_config(data: Dict[str, Any], chk: Checker, check_config: bool) -> Any:
    """Load the base config with mmengine, so dotted keys can be checked against it."""
    base = data.get("base_config")
    if base is None:
        return None
    if not isinstance(base, str):
        chk.add(("base_config",), f"expected a path to an mmengine config (.py), got {type_name(base)}")
        return None
    path = resolve_path(base)
    if not path.is_file():
        chk.add(("base_config",), f"config file not found: {base}")
        return None
    if not check_config:
        return None
    try:
        import ovbench  # noqa: F401  (registries + shims before mmengine parses the config)
        from mmengine.config import Config

        return Config.fromfile(str(path))
    except (Exception, SystemExit) as e:  # a broken config (even one calling exit()) is this file's problem
        chk.add(("base_config",), f"config cannot be loaded: {type(e).__name__}: {e}")
        return None


def _check_space(data: Dict[str, Any], chk: Checker, sampler: str, base_cfg: Any) -> Dict[str, ParamSpec]:
    raw = data.get("space")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        chk.add(("space",), f"expected a mapping of dotted config keys to value lists, got {type_name(raw)}")
        return {}
    if not raw:
        chk.add(("space",), "empty search space; expected at least one dotted key with values")
        return {}
    out: Dict[str, ParamSpec] = {}
    for key, value in raw.items():
        path = ("space", str(key))
        if str(key) == "seed":
            chk.add(path, "'seed' is not a config key; list repeats under the top-level 'seeds'")
            continue
        param = check_param(chk, path, str(key), value, sampler)
        if param is None:
            continue
        values = list(param.choices) if param.choices is not None else [param.low, param.high]
        if param.kind == "int":
            values = [int(v) for v in values]
        check_key(chk, path, str(key), values, base_cfg)
        out[str(key)] = param
    return out



def _check_seeds(data: Dict[str, Any], chk: Checker) -> List[int]:
    seeds = data.get("seeds", [0])
    if is_int(seeds):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(is_seed(s) for s in seeds):
        chk.add(("seeds",), f"expected {KEY_FORMS['seeds']}, got {seeds!r}")
        return [0]
    if len(set(seeds)) != len(seeds):
        chk.add(("seeds",), "duplicate seeds")
    return list(seeds)


def _check_datasets(data: Dict[str, Any], chk: Checker, cfg: Any) -> List[str]:
    """Evaluation sets are names of the config's ``eval_datasets`` (one mechanism for real and synthetic
    sets: ovbench.data.roots); checked against the config when it was loaded."""
    raw = data.get("datasets")
    if raw is None:
        return []
    declared = sorted((cfg.get("eval_datasets") or {}) if cfg is not None else [])
    known = f"the config's eval_datasets: {', '.join(declared)}" if declared else "names from the config's eval_datasets"
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(n, str) for n in raw):
        chk.add(("datasets",), f"expected a non-empty list of dataset names ({known}), got {raw!r}")
        return []
    if cfg is not None and not declared:
        chk.add(("datasets",), "the config declares no eval_datasets; expected eval_datasets = dict(<name>="
                "<dataset config>) in it (configs/_base_/datasets/ov_eval_sets.py)")
    for name in raw:
        if declared and name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            chk.add(("datasets",), f"unknown dataset {name!r}{hint}; expected one of {known}")
    if len(set(raw)) != len(raw):
        chk.add(("datasets",), "duplicate dataset; expected each name once")
    return list(raw)


def _evaluator_metrics(cfg: Any) -> Optional[Tuple[List[str], set]]:
    """(evaluator types, dataset metrics they yield) of a config's ``test_evaluator``; None when that
    cannot be told here (no config loaded, or an evaluator not in EVALUATOR_METRICS)."""
    raw = cfg.get("test_evaluator") if cfg is not None else None
    evaluators = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    types, metrics = [], set()
    for ev in evaluators:
        etype = ev.get("type") if hasattr(ev, "get") else None
        etype = getattr(etype, "__name__", etype)
        if etype not in EVALUATOR_METRICS:
            return None
        types.append(etype)
        if not ev.get("prefix"):  # a prefixed evaluator's metrics are <prefix>/<metric>
            metrics.update(EVALUATOR_METRICS[etype])
    return types, metrics


def _check_objective(data: Dict[str, Any], chk: Checker, dsets: List[str], cfg: Any) -> Tuple[str, str]:
    """``objective: {metric: <dataset>/<metric> | <cost metric>, direction: maximize|minimize}``; a
    dataset metric must be one the base config's evaluators yield (e.g. no PQ from an mIoU-only one)."""
    raw = data.get("objective")
    default = (f"{dsets[0]}/mIoU" if dsets else "", "maximize")
    if raw is None:
        return default
    if isinstance(raw, str):
        raw = {"metric": raw}
    if not isinstance(raw, dict):
        chk.add(("objective",), "expected {metric: <dataset>/<metric>, direction: maximize|minimize}")
        return default
    metric, direction = raw.get("metric"), raw.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        chk.add(("objective", "direction"), f"expected 'maximize' or 'minimize', got {direction!r}")
    if not isinstance(metric, str):
        chk.add(("objective", "metric"), "expected a string such as 'toy/mIoU'")
        return default
    if metric in COST_METRICS:
        return metric, str(direction)
    dset, _, name = metric.rpartition("/")
    if dset not in dsets or name not in DATASET_METRICS:
        chk.add(("objective", "metric"), f"unknown metric {metric!r}; expected <dataset>/<metric> with dataset "
                f"in {dsets} and metric in {', '.join(DATASET_METRICS)}, or a cost metric")
        return metric, str(direction)
    yields = _evaluator_metrics(cfg)
    if yields is not None and name not in yields[1]:
        chk.add(("objective", "metric"), f"the base config's test_evaluator ({', '.join(yields[0])}) does not "
                f"yield {name}; expected one of: {', '.join(sorted(yields[1])) or 'none'}, or a cost metric")
    return metric, str(direction)


def _check_overrides(data: Dict[str, Any], chk: Checker, base_cfg: Any) -> Dict[str, Any]:
    raw = data.get("overrides")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        chk.add(("overrides",), f"expected a mapping of dotted config keys to values, got {type_name(raw)}")
        return {}
    for key, value in raw.items():
        if has_nan(value):
            chk.add(("overrides", str(key)), "NaN value; expected a number")
        check_key(chk, ("overrides", str(key)), str(key), [value], base_cfg)
    return dict(raw)


def _check_executor(data: Dict[str, Any], chk: Checker) -> ExecutorSpec:
    raw = data.get("executor", {})
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        chk.add(("executor",), "expected a mapping {type: local|slurm|torchrun, workers: int, ...}")
        return ExecutorSpec()
    for key in raw:
        if key not in EXECUTOR_KEYS:
            chk.add(("executor", str(key)), f"unknown executor key; expected one of: {', '.join(EXECUTOR_KEYS)}")
    etype = raw.get("type", "local")
    if etype not in EXECUTORS:
        chk.add(("executor", "type"), f"unknown executor {etype!r}; expected one of: {', '.join(EXECUTORS)}")
        etype = "local"
    workers = raw.get("workers", 0)
    if not is_int(workers) or not 0 <= workers <= MAX_WORKERS:
        chk.add(("executor", "workers"), f"expected a non-negative integer up to {MAX_WORKERS} (0 = fit the "
                f"machine), got {workers!r}")
        workers = 0
    timeout = raw.get("timeout_min", 120.0)
    if not is_finite_number(timeout) or timeout <= 0:
        chk.add(("executor", "timeout_min"), f"expected a positive finite number of minutes, got {timeout!r}")
        timeout = 120.0
    slurm = raw.get("slurm", {}) or {}
    if not isinstance(slurm, dict):
        chk.add(("executor", "slurm"), "expected a mapping of submitit parameters")
        slurm = {}
    gpus = raw.get("gpus_per_trial", 0)
    if not is_int(gpus) or not 0 <= gpus <= MAX_WORKERS:
        chk.add(("executor", "gpus_per_trial"), f"expected a non-negative integer, got {gpus!r}")
        gpus = 0
    return ExecutorSpec(etype, workers, float(timeout), dict(slurm), gpus)


def _check_n_trials(data: Dict[str, Any], chk: Checker, sampler: str, space: Dict[str, ParamSpec]) -> Optional[int]:
    n = data.get("n_trials")
    if sampler == "grid":
        if n is not None:
            chk.add(("n_trials",), "not used by the grid sampler (it runs every point x seed); remove it")
        return None
    if not is_int(n) or n <= 0:
        chk.add(("n_trials",), f"sampler {sampler!r} needs n_trials: a positive integer, got {n!r}")
        return None
    return n