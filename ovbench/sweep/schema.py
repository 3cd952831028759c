"""The ablation file's schema, stated once: its keys (:data:`SCHEMA`) and the validated objects.

Every list of keys (the allowed ones, the required ones, the form a message
expects, what identifies a study, what ``real:`` may replace) is derived from
:data:`SCHEMA`, so adding a key is one line here plus its check in
:mod:`ovbench.sweep.spec`. The user's guide to the keys is docs/sweeps.md.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ovbench.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Key:
    """One top-level key of an ablation file."""

    name: str
    form: str  # the expected form, as error messages say it
    required: bool = False
    nullable: bool = True  # False: an explicit null is taken as a mistake, not as the default
    defining: bool = False  # part of the study's identity (its content hash)
    scaled: bool = False  # may be replaced under ``real:`` at ``--scale real``


SCHEMA: Tuple[Key, ...] = (
    Key("study", "a study name (default: the file's stem)"),
    Key("description", "a string"),
    Key("base_config", "a path to an mmengine config (.py)", required=True, nullable=False, defining=True),
    Key("real_config", "a path to the real-scale mmengine config (.py), run by `ovbench run --scale real`"),
    Key("real", "a mapping of keys that replace the file's at --scale real (datasets, objective, space, ...)"),
    Key("space", "a mapping of dotted config keys to value lists", required=True, nullable=False, defining=True,
        scaled=True),
    Key("sampler", "one of grid, tpe, random", nullable=False, defining=True, scaled=True),
    Key("sampler_seed", "an integer in 0..2**32-1", nullable=False, defining=True, scaled=True),
    Key("n_trials", "a positive integer", nullable=False, defining=True, scaled=True),
    Key("seeds", "a non-empty list of integers in 0..2**32-1", nullable=False, defining=True, scaled=True),
    Key("datasets", "a non-empty list of names from the config's eval_datasets", required=True, nullable=False,
        defining=True, scaled=True),
    Key("objective", "{metric: <dataset>/<metric>, direction: maximize|minimize}", nullable=False, defining=True,
        scaled=True),
    Key("overrides", "a mapping of dotted config keys to values", defining=True, scaled=True),
    Key("executor", "{type: local|slurm|torchrun, workers: N, timeout_min: minutes}", nullable=False, scaled=True),
    Key("storage", "an optuna storage URL", scaled=True),
    Key("work_dir", "a folder", scaled=True),
    Key("paper", "a mapping (setting -> metric -> value)"),
    Key("reference", "a setting label of the space, e.g. 'q=128' (reports compare every row with it)",
        scaled=True),
)
TOP_KEYS = tuple(k.name for k in SCHEMA)
REQUIRED_KEYS = tuple(k.name for k in SCHEMA if k.required)
#: the expected form of each key that may not be null (a null is taken as a mistake, not a default)
KEY_FORMS = {k.name: k.form for k in SCHEMA if not k.nullable}
DEFINING_KEYS = tuple(k.name for k in SCHEMA if k.defining)
SCALED_KEYS = tuple(k.name for k in SCHEMA if k.scaled)
SCALES = ("embedded", "real")
#: a real-scale study's name: the file's study + this suffix (its own storage folder and report)
REAL_SUFFIX = "-real"

SAMPLERS = ("grid", "tpe", "random")
EXECUTORS = ("local", "slurm", "torchrun")
EXECUTOR_KEYS = ("type", "workers", "timeout_min", "slurm", "gpus_per_trial")
RANGE_KEYS = ("low", "high", "log", "step", "type")
NAMED_KEY = "named"  # {named: {label: value, ...}}: choices a report shows by label
#: metrics a trial reports per evaluation set
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
    objective_metric: str = ""
    direction: str = "maximize"
    overrides: Dict[str, Any] = field(default_factory=dict)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    storage: Optional[str] = None
    work_dir: Optional[str] = None
    paper: Dict[str, Any] = field(default_factory=dict)
    reference: Optional[str] = None  # the setting reports compare every row with (paired by seed)
    scale: str = "embedded"  # which config the spec runs: base_config (embedded) or real_config (real)

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
        """What defines the study's results: the :data:`SCHEMA` keys marked ``defining`` (the executor
        and storage do not)."""
        special = {"space": {k: v.to_dict() for k, v in self.space.items()},
                   "objective": [self.objective_metric, self.direction]}
        return {k: special[k] if k in special else getattr(self, k) for k in DEFINING_KEYS}

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
