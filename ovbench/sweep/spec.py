"""Ablation files (``ablations/*.yaml``): YAML -> one validated :class:`AblationSpec`.

Nothing runs until the whole file is valid, and a user fixing a file should see
every problem at once, so validation collects :class:`Problem` s (file, line,
key, what was expected) and raises one :class:`SpecError` listing them all.

File form (see ``docs/sweeps.md``)::

    study: ci                              # optional, default: the file's stem
    description: "..."
    base_config: configs/smoke/tiny_fcn.py # mmengine config every trial starts from
    real_config: configs/...               # optional: the real-scale config for real data
    space:                                 # dotted config keys -> values
      model.decode_head.channels: [8, 16]  # list: grid / categorical
      optim_wrapper.optimizer.lr: {low: 1e-3, high: 1e-1, log: true}   # range: tpe/random only
    sampler: grid                          # grid | tpe | random
    sampler_seed: 0
    n_trials: 8                            # tpe/random only
    seeds: [0, 1]                          # repeats; every trial takes one
    datasets: [toy]                        # evaluation sets (names in ovbench.sweep.datasets)
    train_dataset: toy                     # optional: train on a named dataset
    objective: {metric: toy/mIoU, direction: maximize}
    overrides: {train_cfg.max_iters: 40}   # applied to every trial
    executor: {type: local, workers: 2, timeout_min: 60}
    storage: null                          # optuna URL; default sqlite under the work dir
    paper: {}                              # optional: the paper's figures, for reports
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ovbench.errors import InputError
from ovbench.sweep import datasets as ds_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
TOP_KEYS = (
    "study", "description", "base_config", "real_config", "space", "sampler", "sampler_seed",
    "n_trials", "seeds", "datasets", "train_dataset", "objective", "overrides", "executor",
    "storage", "work_dir", "paper",
)
REQUIRED_KEYS = ("base_config", "space", "datasets")
#: the expected form of each key that may not be null (a null is taken as a mistake, not a default)
KEY_FORMS = {
    "base_config": "a path to an mmengine config (.py)",
    "space": "a mapping of dotted config keys to value lists",
    "sampler": "one of grid, tpe, random",
    "sampler_seed": "an integer in 0..2**32-1",
    "n_trials": "a positive integer",
    "seeds": "a non-empty list of integers in 0..2**32-1",
    "datasets": "a non-empty list of dataset names",
    "objective": "{metric: <dataset>/<metric>, direction: maximize|minimize}",
    "executor": "{type: local|slurm|torchrun, workers: N, timeout_min: minutes}",
}
SAMPLERS = ("grid", "tpe", "random")
EXECUTORS = ("local", "slurm", "torchrun")
EXECUTOR_KEYS = ("type", "workers", "timeout_min", "slurm", "gpus_per_trial")
RANGE_KEYS = ("low", "high", "log", "step", "type")
NAMED_KEY = "named"  # {named: {label: value, ...}}: choices a report shows by label
#: metrics a trial reports per evaluation set (PQ/SQ/RQ once panoptic evaluation lands)
DATASET_METRICS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "aAcc", "mAcc", "PQ", "SQ", "RQ")
#: cost metrics a trial reports (objective may name these too)
COST_METRICS = (
    "trainable_params", "trainable_params_free", "total_params", "train_time_s", "wall_time_s",
    "s_per_iter", "throughput_img_s", "peak_mem_mb", "flops",
)
SCALARS = (bool, int, float, str, type(None))
#: which evaluator (a config's ``test_evaluator`` type) yields each dataset metric; an objective
#: metric no evaluator of the base config yields is refused at validation
EVALUATOR_METRICS = {
    "OpenVocabIoUMetric": ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "aAcc", "mAcc"),
    "IoUMetric": ("mIoU", "aAcc", "mAcc"),
    "PanopticQualityMetric": ("PQ", "SQ", "RQ"),
    "AlignmentMetric": (),
    "ProposalRecallMetric": (),
}
#: the suffix of a study's lock study (``ovbench.sweep.study.StorageLock``); no study may end with it
LOCK_SUFFIX = ".ovbench-lock"
#: a study name is a file name too (work dir, report folder): no separators, no leading dot
STUDY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_FILE_BYTES = 1 << 20  # an ablation file is a page of YAML; more is a mistake (or an attack)
MAX_YAML_NODES = 100_000  # values after expanding YAML aliases: bounds an alias bomb
MAX_WORKERS = 256  # a sane ceiling; a run also starts no more workers than it has points
MAX_SEED = 2**32 - 1  # numpy's seed range


@dataclass(frozen=True)
class Problem:
    """One validation error: where it is and what was expected."""

    file: str
    key: str
    message: str
    line: Optional[int] = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SpecError(InputError, ValueError):
    """All problems of one ablation file, raised together."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid ablation file ({len(self.problems)} problem(s)):\n{lines}")


@dataclass(frozen=True)
class ParamSpec:
    """One swept config key: a list of choices, or a numeric range (non-grid samplers)."""

    key: str
    choices: Optional[Tuple[Any, ...]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    kind: str = "choice"  # choice | int | float
    labels: Optional[Tuple[str, ...]] = None  # named choices: the label is the trial's param

    def options(self) -> Tuple[Any, ...]:
        """What a trial's param takes: the labels of named choices, else the choices."""
        return self.labels if self.labels is not None else tuple(self.choices or ())

    def value_of(self, option: Any) -> Any:
        """The config value of a param (a label maps to its value)."""
        if self.labels is not None and option in self.labels:
            return (self.choices or ())[self.labels.index(option)]
        return option

    def to_dict(self) -> Dict[str, Any]:
        if self.kind == "choice" and self.labels is not None:
            return {"choices": list(self.labels), "values": list(self.choices or ())}
        if self.kind == "choice":
            return {"choices": list(self.choices or ())}
        return {"kind": self.kind, "low": self.low, "high": self.high, "log": self.log, "step": self.step}


@dataclass(frozen=True)
class ExecutorSpec:
    """Where trials run: ``local`` pool of N workers, ``slurm`` (submitit) or ``torchrun``."""

    type: str = "local"
    workers: int = 0  # 0 = fit the machine
    timeout_min: float = 120.0
    slurm: Dict[str, Any] = field(default_factory=dict)
    gpus_per_trial: int = 0


@dataclass
class AblationSpec:
    """A validated ablation file. ``content_hash`` identifies the study it defines."""

    path: str
    study: str
    base_config: str
    space: Dict[str, ParamSpec]
    datasets: List[str]
    description: str = ""
    real_config: Optional[str] = None
    sampler: str = "grid"
    sampler_seed: int = 0
    n_trials: Optional[int] = None
    seeds: List[int] = field(default_factory=lambda: [0])
    train_dataset: Optional[str] = None
    objective_metric: str = ""
    direction: str = "maximize"
    overrides: Dict[str, Any] = field(default_factory=dict)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    storage: Optional[str] = None
    work_dir: Optional[str] = None
    paper: Dict[str, Any] = field(default_factory=dict)

    def config_params(self, point: Dict[str, Any]) -> Dict[str, Any]:
        """A point's dotted-key -> config value (named choices resolved; ``seed`` dropped)."""
        return {k: self.space[k].value_of(v) for k, v in point.items() if k in self.space}

    def grid_points(self) -> List[Dict[str, Any]]:
        """Every (params, seed) of a grid study, in a stable order; seed under key ``seed``."""
        keys = list(self.space)
        out = []
        for values in itertools.product(*(self.space[k].options() for k in keys)):
            for seed in self.seeds:
                point = dict(zip(keys, values))
                point["seed"] = seed
                out.append(point)
        return out

    def n_points(self) -> int:
        """How many trials a full run has: every grid point x seed, or ``n_trials``."""
        return len(self.grid_points()) if self.sampler == "grid" else int(self.n_trials or 0)

    def defining(self) -> Dict[str, Any]:
        """What defines the study's results (the executor and storage do not)."""
        return {
            "base_config": self.base_config,
            "space": {k: v.to_dict() for k, v in self.space.items()},
            "sampler": self.sampler,
            "sampler_seed": self.sampler_seed,
            "n_trials": self.n_trials,
            "seeds": self.seeds,
            "datasets": self.datasets,
            "train_dataset": self.train_dataset,
            "objective": [self.objective_metric, self.direction],
            "overrides": self.overrides,
        }

    @property
    def content_hash(self) -> str:
        """Hash of :meth:`defining`; a study refuses a spec whose hash differs."""
        blob = json.dumps(self.defining(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def base_config_path(self) -> Path:
        return resolve_path(self.base_config)


def resolve_path(path: str) -> Path:
    """A config path as given (relative to the cwd), else relative to the repository root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p.resolve()
    return (REPO_ROOT / p).resolve()


def study_name_problem(name: str) -> Optional[str]:
    """Why ``name`` cannot name a study (None if it can).

    A study name becomes a folder (``work_dirs/sweeps/<study>``, ``reports/<study>``), so
    ``.``, ``..`` and separators would escape them; and ``X.ovbench-lock`` is study X's
    storage mutex, which a study of that name would collide with.
    """
    if not STUDY_NAME_RE.fullmatch(name):
        return ("expected 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit "
                f"(it names folders), got {name!r}")
    if name.endswith(LOCK_SUFFIX):
        return f"may not end with {LOCK_SUFFIX!r} (ovbench's lock studies use that name)"
    return None


def storage_url_problem(url: str) -> Optional[str]:
    """Why ``url`` is not an optuna storage ovbench can open (None if it may be), without connecting."""
    forms = "expected sqlite:///PATH, postgresql://USER@HOST/DB, mysql://... or journal:PATH"
    if url.startswith("journal:"):
        return None if url[len("journal:"):].strip() else f"journal: needs a file path; {forms}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"not a storage URL; {forms}"
    try:
        parsed.get_dialect()
    except (NoSuchModuleError, ImportError):
        return f"unsupported scheme {parsed.drivername!r}; {forms}"
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return f"an in-memory SQLite database is lost when the run ends and not shared by its workers; {forms}"
    return None


def _expanded_size(root: yaml.Node) -> int:
    """How many values the document has once every alias is copied (what ``json.dumps`` and any walk
    see), counted per distinct node so an alias bomb costs nothing here; capped at MAX_YAML_NODES + 1.
    Raises RecursionError on an alias that contains itself."""
    sizes: Dict[int, int] = {}
    active: set = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise RecursionError("recursive alias")
        active.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = min(1 + sum(size(c) for c in children), MAX_YAML_NODES + 1)
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def key_lines(root: Optional[yaml.Node]) -> Tuple[Dict[Tuple[str, ...], int], List[Tuple[Tuple[str, ...], int]]]:
    """Each mapping key path (tuple) -> its 1-based line, and the (path, line) of every duplicate key
    (YAML lets the last one win silently). Call only on a document of bounded size (see
    :func:`_expanded_size`)."""
    lines: Dict[Tuple[str, ...], int] = {}
    duplicates: List[Tuple[Tuple[str, ...], int]] = []

    def walk(node: Any, prefix: Tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k, v in node.value:
                path = prefix + (str(k.value),)
                if path in seen and k.value != "<<":
                    duplicates.append((path, k.start_mark.line + 1))
                seen.add(path)
                lines.setdefault(path, k.start_mark.line + 1)
                walk(v, path)

    walk(root, ())
    return lines, duplicates


class _Checker:
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


def _type_name(value: Any) -> str:
    return type(value).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _has_nan(value: Any) -> bool:
    """Whether a value holds NaN anywhere: no config means NaN, and a trial would silently train on it.
    (An infinity may be meant, e.g. ``orth_lambda: .inf`` is hard orthogonality; see :func:`_check_key`.)"""
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


def _is_seed(v: Any) -> bool:
    return _is_int(v) and 0 <= v <= MAX_SEED


def _compatible(base: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``base`` in a config (ints may stand for floats)."""
    if base is None:
        return True
    if value is None:  # None may disable a component (a dict or list), never stand for a number or name
        return isinstance(base, (dict, list, tuple))
    if isinstance(base, bool):
        return isinstance(value, bool)
    if _is_int(base):
        return _is_int(value)
    if isinstance(base, float):
        return _is_int(value) or isinstance(value, float)
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


def load_spec(path: str | os.PathLike, check_config: bool = True) -> AblationSpec:
    """Read and validate an ablation file; raise :class:`SpecError` listing every problem."""
    file = str(path)
    data, root = _parse(file, _read_text(file))
    if not isinstance(data, dict):
        raise SpecError([Problem(file, "", f"expected a mapping of keys at the top level, got {_type_name(data)}", 1)])
    lines, duplicates = key_lines(root)
    chk = _Checker(file, lines)
    for key_path, line in duplicates:
        chk.problems.append(Problem(file, ".".join(key_path), "duplicate key (YAML would silently keep the last "
                                    "one); expected each key once", line))
    spec = _build(file, data, chk, check_config)
    if chk.problems:
        raise SpecError(chk.problems)
    assert spec is not None
    return spec


def _read_text(file: str) -> str:
    """The file as UTF-8 text: a regular file of at most MAX_FILE_BYTES (never read a FIFO or device)."""
    p = Path(file)
    try:
        if not p.is_file():
            what = "not found" if not p.exists() else "not a regular file"
            raise SpecError([Problem(file, "", f"cannot read the file ({what}); expected a YAML ablation file")])
        if p.stat().st_size > MAX_FILE_BYTES:
            raise SpecError([Problem(file, "", f"file is {p.stat().st_size} bytes; an ablation file is at most "
                                     f"{MAX_FILE_BYTES} bytes of YAML")])
        raw = p.read_bytes()
    except OSError as e:
        raise SpecError([Problem(file, "", f"cannot read the file ({e.strerror})")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError([Problem(file, "", f"not UTF-8 text (byte {e.start} cannot be decoded; a binary or "
                                 "UTF-16 file?); expected YAML saved as UTF-8", line)]) from None


def _parse(file: str, text: str) -> Tuple[Any, Optional[yaml.Node]]:
    """The document and its node tree, refusing YAML that expands beyond MAX_YAML_NODES values (an alias
    bomb) or nests without end, before anything walks or copies it."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root) > MAX_YAML_NODES:
            raise SpecError([Problem(file, "", f"the YAML expands to more than {MAX_YAML_NODES} values (nested "
                                     "aliases?); expected a plain ablation file", root.start_mark.line + 1)])
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        msg = getattr(e, "problem", None) or str(e)
        raise SpecError([Problem(file, "", f"not valid YAML: {msg}", line)]) from None
    except RecursionError:
        raise SpecError([Problem(file, "", "YAML nested too deeply or an alias that contains itself; "
                                 "expected a plain ablation file")]) from None
    finally:
        loader.dispose()


def _build(file: str, data: Dict[str, Any], chk: _Checker, check_config: bool) -> Optional[AblationSpec]:
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
    dsets = _check_datasets(data, chk)
    metric, direction = _check_objective(data, chk, dsets, merged)
    executor = _check_executor(data, chk)
    n_trials = _check_n_trials(data, chk, sampler, space)
    for key in ("study", "description", "storage", "work_dir", "real_config"):
        if data.get(key) is not None and not isinstance(data[key], str):
            chk.add((key,), f"expected a string, got {_type_name(data[key])}")
    real = data.get("real_config")
    if isinstance(real, str) and not resolve_path(real).is_file():
        chk.add(("real_config",), f"file not found: {real}")
    storage = data.get("storage")
    if isinstance(storage, str) and (problem := storage_url_problem(storage)):
        chk.add(("storage",), problem)
    if data.get("paper") is not None and not isinstance(data["paper"], dict):
        chk.add(("paper",), f"expected a mapping (setting -> metric -> value), got {_type_name(data['paper'])}")
    sampler_seed = data.get("sampler_seed", 0)
    if not _is_seed(sampler_seed):
        chk.add(("sampler_seed",), f"expected {KEY_FORMS['sampler_seed']}, got {sampler_seed!r}")
        sampler_seed = 0
    paper = data.get("paper") if isinstance(data.get("paper"), dict) else {}
    study = data.get("study") or Path(file).stem
    if isinstance(study, str) and (problem := study_name_problem(study)):
        chk.add(("study",), problem + ("" if data.get("study") else " (the default is the file's stem; set 'study:')"))
    return AblationSpec(
        path=file, study=str(study), base_config=str(data.get("base_config", "")), space=space,
        datasets=dsets, description=str(data.get("description") or ""), real_config=real,
        sampler=sampler, sampler_seed=sampler_seed, n_trials=n_trials, seeds=seeds,
        train_dataset=data.get("train_dataset"), objective_metric=metric, direction=direction,
        overrides=overrides, executor=executor, storage=storage, work_dir=data.get("work_dir"),
        paper=paper,
    )


def _check_sampler(data: Dict[str, Any], chk: _Checker) -> str:
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


def _check_base_config(data: Dict[str, Any], chk: _Checker, check_config: bool) -> Any:
    """Load the base config with mmengine, so dotted keys can be checked against it."""
    base = data.get("base_config")
    if base is None:
        return None
    if not isinstance(base, str):
        chk.add(("base_config",), f"expected a path to an mmengine config (.py), got {_type_name(base)}")
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


def _check_key(chk: _Checker, path: Tuple[str, ...], dotted: str, values: Sequence[Any], base_cfg: Any) -> None:
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
            chk.add(path, f"wrong type: value {v!r} is {_type_name(v)}, but the base config has "
                    f"{_type_name(current)} ({current!r})")
        elif isinstance(v, float) and math.isinf(v) and _is_finite_number(current):
            chk.add(path, f"infinite value where the base config has the finite number {current!r}; "
                    "expected a finite number")


def _check_space(data: Dict[str, Any], chk: _Checker, sampler: str, base_cfg: Any) -> Dict[str, ParamSpec]:
    raw = data.get("space")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        chk.add(("space",), f"expected a mapping of dotted config keys to value lists, got {_type_name(raw)}")
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
        param = _check_param(chk, path, str(key), value, sampler)
        if param is None:
            continue
        values = list(param.choices) if param.choices is not None else [param.low, param.high]
        if param.kind == "int":
            values = [int(v) for v in values]
        _check_key(chk, path, str(key), values, base_cfg)
        out[str(key)] = param
    return out


def _check_param(chk: _Checker, path: Tuple[str, ...], key: str, value: Any, sampler: str) -> Optional[ParamSpec]:
    """A list of choices (any sampler) or a {low, high, log, step, type} range (tpe/random)."""
    if isinstance(value, list):
        if not value:
            chk.add(path, "empty list of values; expected at least one value")
            return None
        bad = [v for v in value if not isinstance(v, SCALARS) and not isinstance(v, list)]
        if bad:
            chk.add(path, f"values must be scalars or lists, got {_type_name(bad[0])}")
            return None
        if _has_nan(value):
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
        if _has_nan(list(named.values())):
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
    chk.add(path, f"expected a list of values (or a {{low, high}} range), got {_type_name(value)}")
    return None


def _check_range(chk: _Checker, path: Tuple[str, ...], key: str, value: Dict[str, Any]) -> Optional[ParamSpec]:
    """``{low, high, log, step, type}``: finite bounds, low <= high, a positive step that fits the type."""
    low, high, log, step = value.get("low"), value.get("high"), value.get("log", False), value.get("step")
    if not all(_is_finite_number(v) for v in (low, high)):
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
    kind = value.get("type") or ("int" if _is_int(low) and _is_int(high) else "float")
    if kind not in ("int", "float"):
        chk.add(path + ("type",), f"expected 'int' or 'float', got {kind!r}")
        return None
    if kind == "int" and not (_is_int(low) and _is_int(high)):
        chk.add(path, f"an int range needs integer 'low' and 'high', got {low!r} and {high!r}")
        return None
    if step is not None and (not _is_finite_number(step) or step <= 0 or (kind == "int" and not _is_int(step))):
        chk.add(path + ("step",), f"expected a positive {'integer' if kind == 'int' else 'number'}, got {step!r}")
        return None
    if step is not None and log and not (kind == "int" and step == 1):
        chk.add(path + ("step",), "a log range cannot have a step (optuna samples it continuously); remove one")
        return None
    return ParamSpec(key, low=low, high=high, log=log, step=step, kind=kind)


def _check_seeds(data: Dict[str, Any], chk: _Checker) -> List[int]:
    seeds = data.get("seeds", [0])
    if _is_int(seeds):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(_is_seed(s) for s in seeds):
        chk.add(("seeds",), f"expected {KEY_FORMS['seeds']}, got {seeds!r}")
        return [0]
    if len(set(seeds)) != len(seeds):
        chk.add(("seeds",), "duplicate seeds")
    return list(seeds)


def _check_datasets(data: Dict[str, Any], chk: _Checker) -> List[str]:
    raw = data.get("datasets")
    known = ", ".join(sorted(ds_registry.REGISTRY))
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        chk.add(("datasets",), f"expected a non-empty list of dataset names ({known})")
        return []
    for name in raw:
        if not isinstance(name, str):
            chk.add(("datasets",), f"expected dataset names ({known}), got {_type_name(name)} {name!r}")
        elif name not in ds_registry.REGISTRY:
            chk.add(("datasets",), f"unknown dataset {name!r}; known: {known}")
    if len(set(map(str, raw))) != len(raw):
        chk.add(("datasets",), "duplicate dataset; expected each name once")
    train = data.get("train_dataset")
    if train is not None and (not isinstance(train, str) or train not in ds_registry.REGISTRY):
        chk.add(("train_dataset",), f"expected one dataset name ({known}), got {train!r}")
    return [str(n) for n in raw]


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


def _check_objective(data: Dict[str, Any], chk: _Checker, dsets: List[str], cfg: Any) -> Tuple[str, str]:
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


def _check_overrides(data: Dict[str, Any], chk: _Checker, base_cfg: Any) -> Dict[str, Any]:
    raw = data.get("overrides")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        chk.add(("overrides",), f"expected a mapping of dotted config keys to values, got {_type_name(raw)}")
        return {}
    for key, value in raw.items():
        if _has_nan(value):
            chk.add(("overrides", str(key)), "NaN value; expected a number")
        _check_key(chk, ("overrides", str(key)), str(key), [value], base_cfg)
    return dict(raw)


def _check_executor(data: Dict[str, Any], chk: _Checker) -> ExecutorSpec:
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
    if not _is_int(workers) or not 0 <= workers <= MAX_WORKERS:
        chk.add(("executor", "workers"), f"expected a non-negative integer up to {MAX_WORKERS} (0 = fit the "
                f"machine), got {workers!r}")
        workers = 0
    timeout = raw.get("timeout_min", 120.0)
    if not _is_finite_number(timeout) or timeout <= 0:
        chk.add(("executor", "timeout_min"), f"expected a positive finite number of minutes, got {timeout!r}")
        timeout = 120.0
    slurm = raw.get("slurm", {}) or {}
    if not isinstance(slurm, dict):
        chk.add(("executor", "slurm"), "expected a mapping of submitit parameters")
        slurm = {}
    gpus = raw.get("gpus_per_trial", 0)
    if not _is_int(gpus) or not 0 <= gpus <= MAX_WORKERS:
        chk.add(("executor", "gpus_per_trial"), f"expected a non-negative integer, got {gpus!r}")
        gpus = 0
    return ExecutorSpec(etype, workers, float(timeout), dict(slurm), gpus)


def _check_n_trials(data: Dict[str, Any], chk: _Checker, sampler: str, space: Dict[str, ParamSpec]) -> Optional[int]:
    n = data.get("n_trials")
    if sampler == "grid":
        if n is not None:
            chk.add(("n_trials",), "not used by the grid sampler (it runs every point x seed); remove it")
        return None
    if not _is_int(n) or n <= 0:
        chk.add(("n_trials",), f"sampler {sampler!r} needs n_trials: a positive integer, got {n!r}")
        return None
    return n
