"""Before a study starts: the datasets its trials read, checked (or generated), and the dry-run plan.

A real-scale study spends GPU-days; a dataset missing from disk must stop it in
seconds, before the storage is created, naming the set, its path and its layout
(docs/datasets.md), not fail every trial in its first iteration. The trials'
datasets are found the way the trial finds them (:mod:`ovbench.data.roots` over
the study's config with its overrides), so what is checked is what is read.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ovbench.errors import InputError
from ovbench.sweep.schema import AblationSpec


def study_config(spec: AblationSpec) -> Any:
    """The study's config (base or real, by the spec's scale) with the file's overrides, as trials load it."""
    import ovbench  # noqa: F401  (registries + shims before mmengine parses the config)
    from mmengine.config import Config

    cfg = Config.fromfile(str(spec.base_config_path()))
    if spec.overrides:
        cfg.merge_from_dict(copy.deepcopy(spec.overrides))
    return cfg


def study_datasets(spec: AblationSpec, root: Path, generate: bool = True, cfg: Any = None) -> Dict[str, Any]:
    """``{label: dataset config}`` of every set a trial reads, under the data root ``root``: the training
    set, the validation set when training validates, and the study's evaluation sets (by name)."""
    from ovbench.data.roots import point_config
    from ovbench.evaluation import eval_datasets_of
    from ovbench.sweep.trial import drop_unused_validation

    cfg = copy.deepcopy(cfg if cfg is not None else study_config(spec))
    point_config(cfg, root, generate)
    drop_unused_validation(cfg)
    out: Dict[str, Any] = {}
    for key, label in (("train_dataloader", "train"), ("val_dataloader", "val")):
        if cfg.get(key) and cfg[key].get("dataset") is not None:
            out[f"{label} ({cfg[key].dataset.get('type')})"] = cfg[key].dataset
    out.update(eval_datasets_of(cfg, spec.datasets))
    return out


def check_study_data(spec: AblationSpec, root: Path) -> Dict[str, str]:
    """Generate the synthetic sets and check every set the trials read; ``{eval set: its root}``.

    Raises :class:`ovbench.data.check.DatasetMissing` (exit 2) listing every unusable set.
    """
    from ovbench.data.check import check_datasets

    sets = study_datasets(spec, root, generate=True)
    check_datasets(sets)
    return {name: str(sets[name].get("data_root")) for name in spec.datasets}


class UnbuildablePoint(InputError):
    """A grid point whose CLIP cannot take its PEFT config (e.g. a block size that does not divide the width)."""


def check_points_build(spec: AblationSpec, cfg: Any = None) -> None:
    """Build each grid point's CLIP and PEFT method on the meta device (:mod:`ovbench.models.clip.meta`;
    shapes only, a fraction of a second each) and refuse the study, naming every point that fails, before
    its storage exists. Without this a wrong value passes ``--dry-run`` and then fails each of its trials.
    Points that differ only in the seed are built once. Samplers other than grid draw their points later:
    only the config with the file's overrides is checked for them."""
    from ovbench.models.clip.meta import clip_build_problems

    cfg = cfg if cfg is not None else study_config(spec)
    points = spec.grid_points() if spec.sampler == "grid" else [None]
    problems, seen = [], set()
    for number, point in enumerate(points):
        trial_cfg = copy.deepcopy(cfg)
        if point is not None:
            trial_cfg.merge_from_dict(copy.deepcopy(spec.config_params(point)))
        model = trial_cfg.to_dict().get("model")
        key = json.dumps(model, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        where = f"trial {number} ({_point_text(point)})" if point is not None else "the config with its overrides"
        problems.extend(f"{where}: {p}" for p in clip_build_problems(model))
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UnbuildablePoint(f"{spec.path}: {len(problems)} point(s) of the space cannot build their model:\n{lines}")


def trial_iterations(spec: AblationSpec, cfg: Any) -> List[Optional[int]]:
    """``train_cfg.max_iters`` of each trial of a grid study, with the trial's own parameters applied
    (a study may sweep the training length); one entry per trial, None where not iter-based. Other
    samplers draw their points later: the study's config stands for every trial."""
    def max_iters(c: Any) -> Optional[int]:
        value = (c.get("train_cfg") or {}).get("max_iters")
        return int(value) if value else None

    if spec.sampler != "grid":
        return [max_iters(cfg)] * spec.n_points()
    out = []
    for point in spec.grid_points():
        trial_cfg = copy.deepcopy(cfg)
        trial_cfg.merge_from_dict(copy.deepcopy(spec.config_params(point)))
        out.append(max_iters(trial_cfg))
    return out


def iterations_line(per_trial: List[Optional[int]]) -> str:
    """``iterations: 3000 (200 x 5 + 400 x 5)``; unknown when any trial is not iter-based."""
    if not per_trial or None in per_trial:
        return "iterations: unknown (not iter-based)"
    counts = {n: per_trial.count(n) for n in sorted(set(per_trial))}
    return f"iterations: {sum(per_trial)} ({' + '.join(f'{n} per trial x {k}' for n, k in counts.items())})"


def plan_lines(spec: AblationSpec, root: Path, executor: str, workers: int) -> List[str]:
    """What ``ovbench run --dry-run`` prints: trials (params x seeds), config, datasets with their roots
    (marked when missing), executor and the iterations the study would train. Creates nothing."""
    from ovbench.data.roots import is_generated

    cfg = study_config(spec)
    sets = study_datasets(spec, root, generate=False, cfg=cfg)
    n = spec.n_points()
    lines = [f"study {spec.study} ({spec.scale} scale): {n} trial(s), {spec.sampler} sampler, "
             f"objective {spec.objective_metric} ({spec.direction})",
             f"config: {spec.base_config_path()}", f"data root: {root}", "datasets:"]
    missing = 0
    for label, ds in sets.items():
        where = Path(str(ds.get("data_root")))
        state = "" if where.is_dir() else "  (generated on first use)" if is_generated(where, root) else "  (MISSING)"
        missing += state == "  (MISSING)"
        lines.append(f"  {label}: {where}{state}")
    lines.append(f"executor: {executor}, {workers} worker(s), timeout {spec.executor.timeout_min:g} min per trial")
    lines.append(iterations_line(trial_iterations(spec, cfg)))
    lines.append("trials:" if spec.sampler == "grid" else f"trials: {n} sampled by {spec.sampler} from:")
    points = spec.grid_points() if spec.sampler == "grid" else [{k: v.to_dict() for k, v in spec.space.items()}]
    lines.extend(f"  {i:>3}  {_point_text(p)}" for i, p in enumerate(points))
    if missing:
        lines.append(f"{missing} dataset(s) MISSING: `ovbench run` without --dry-run would stop before creating "
                     "the study (docs/datasets.md)")
    return lines


def _point_text(point: Dict[str, Any]) -> str:
    return "  ".join(f"{k}={v}" for k, v in point.items())
