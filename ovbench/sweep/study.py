"""The optuna study behind an ablation: storage, spec-hash guard, a storage mutex and trial claims.

Exactly-once across processes and machines. Optuna's ``GridSampler`` may run a
grid point twice when several workers share a study (optuna documents this), so
grid points are *claimed* instead: under a mutex held in the study storage
itself (a lock study that only one process can create: study names are unique
in every optuna storage), a worker reconciles the study (fails or recovers
trials whose worker died), picks the first point that is neither complete nor
held by a live worker, and creates its trial directly in state RUNNING. The
storage is the only source of truth, so this works for SQLite on one machine,
PostgreSQL across machines and journal files on shared disks.

A worker that dies (SIGKILL, OOM, node loss) leaves a RUNNING trial. It is
stale when its owner process is gone (same host) or its heartbeat (refreshed by
the owner every ``heartbeat_s``) is older than ``grace_s``. A stale trial whose
work dir holds a finished ``result.json`` is recovered as COMPLETE (no result
is lost); otherwise it is marked FAIL and its point is claimable again.
"""
from __future__ import annotations
import datetime as dt
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from ovbench.adapters.optuna import storage_of, study_id_of, trial_id_of
from ovbench.errors import InputError
from ovbench.sweep.lock import LOCK_DIRECTIONS, Owner, StorageLock, is_lock  # noqa: F401  (re-exported)
from ovbench.sweep.spec import AblationSpec
from ovbench.sweep.storage import (  # noqa: F401  (re-exported: the study's storage)
    StorageError,
    default_storage_url,
    default_work_root,
    display_url,
    open_storage,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT_KEY = "ovbench:heartbeat"
OWNER_KEY = "ovbench:owner"


class StudyMismatch(InputError, RuntimeError):
    """The ablation file changed since the study was created (its content hash differs)."""


def study_name_for(spec: AblationSpec, new_study: bool) -> str:
    """The file's study name, or a hash-suffixed one when ``--new-study`` asks for a fresh study."""
    return f"{spec.study}-{spec.content_hash}" if new_study else spec.study


def open_study(spec: AblationSpec, storage: optuna.storages.BaseStorage, name: str,
               create: bool = True) -> optuna.Study:
    """Open or create the study and refuse it if the spec's content hash differs from the stored one."""
    direction = spec.direction
    if create:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    else:
        try:
            study = optuna.load_study(storage=storage, study_name=name)
        except KeyError:
            raise StorageError(f"no study {name!r} in this storage; start it with `ovbench run {spec.path}` "
                               "first (or pass the --storage it runs on)") from None
    stored = study.user_attrs.get("spec_hash")
    if stored is None:
        with warnings.catch_warnings():  # experimental since optuna 3.2, still the one public way
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([spec.objective_metric])  # dashboards name the objective, not "Objective 0"
        study.set_user_attr("spec_hash", spec.content_hash)
        study.set_user_attr("spec", spec.defining())
        study.set_user_attr("spec_path", spec.path)
    elif stored != spec.content_hash:
        raise StudyMismatch(
            f"{spec.path}: the ablation file changed since study {name!r} was created "
            f"(stored hash {stored}, file hash {spec.content_hash}); results would mix. "
            f"Restore the file, run with --new-study (study '{spec.study}-{spec.content_hash}'), "
            f"or rename 'study:' in the file."
        )
    if create:
        _store_display_keys(study, spec)
    return study


def _store_display_keys(study: optuna.Study, spec: AblationSpec) -> None:
    """The file's keys that label results but do not define the study (paper figures, description,
    reference setting): kept current, so a report of the study by name shows what the file says now."""
    for key, value in (("paper", spec.paper), ("description", spec.description), ("reference", spec.reference)):
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


# ----------------------------------------------------------------------------- params


def encode(value: Any) -> Any:
    """Optuna categorical choices must be scalars; lists are stored as JSON strings."""
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def decode(value: Any, choices: Optional[Tuple[Any, ...]]) -> Any:
    if choices and isinstance(value, str) and any(isinstance(c, (list, tuple, dict)) for c in choices):
        for c in choices:
            if encode(c) == value:
                return c
    return value


def distributions(spec: AblationSpec) -> Dict[str, Any]:
    """Optuna distributions of the search space (categoricals hold encoded choices)."""
    out: Dict[str, Any] = {}
    for key, p in spec.space.items():
        if p.kind == "choice":
            out[key] = CategoricalDistribution([encode(c) for c in p.options()])
        elif p.kind == "int":
            out[key] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            out[key] = FloatDistribution(float(p.low), float(p.high), log=p.log, step=p.step)
    return out


def point_key(point: Dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- liveness




def is_stale(trial: FrozenTrial, grace_s: float, now: Optional[float] = None) -> bool:
    """A RUNNING trial whose owner is gone (same host) or whose heartbeat is older than ``grace_s``."""
    raw = trial.system_attrs.get(OWNER_KEY)
    if raw:
        alive = Owner(**raw).alive()
        if alive is not None:
            return not alive
    beat = trial.system_attrs.get(HEARTBEAT_KEY)
    if beat is None:
        start = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        beat = start
    return (now or time.time()) - float(beat) > grace_s


def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())


# ----------------------------------------------------------------------------- results


def record_result(study: optuna.Study, trial: FrozenTrial, result: Dict[str, Any],
                  objective: str) -> Tuple[TrialState, Dict[str, Any]]:
    """Write a trial's result into the study: COMPLETE with the objective, or FAIL with reason + log tail.
    Returns the state and the result as recorded (a missing objective turns it into a failure with a reason)."""
    storage, tid = storage_of(study), trial_id_of(study, trial)
    ok = result.get("status") == "ok"
    value = flat_metrics(result).get(objective) if ok else None
    if ok and (value is None or value != value):
        have = ", ".join(sorted(k for k in flat_metrics(result) if "/" in k)[:12]) or "none"
        why = "is NaN" if value is not None else f"is not among the trial's metrics ({have}); does the model's " \
            "evaluator produce it?"
        ok, result = False, dict(result, status="failed", error=f"objective {objective} {why}")
    if not ok and not result.get("error"):
        result = dict(result, error=f"failed without a reason; see {result.get('work_dir') or 'its work dir'}"
                                    "/trial.log")
    try:
        for key in ("metrics", "cost", "config_hash", "git_commit", "device", "work_dir", "error", "log_tail",
                    "status", "predictions", "benchmark"):
            if key in result:
                storage.set_trial_user_attr(tid, key, result[key])
        for key, number in flat_metrics(result).items():  # one number each: dashboards sort and plot these
            if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
                storage.set_trial_user_attr(tid, key, number)
    except optuna.exceptions.UpdateFinishedTrialError:
        # settled meanwhile by a worker that judged this trial's owner dead (reconcile(): a heartbeat
        # older than the grace on another host): the first record stands, and this run goes on
        return storage.get_trial(tid).state, result
    state = TrialState.COMPLETE if ok else TrialState.FAIL
    try:
        study.tell(trial.number, value if ok else None, state=state, skip_if_finished=True)
    except (ValueError, RuntimeError):  # finished meanwhile (e.g. judged stale): keep the stored state
        pass
    return state, result


def flat_metrics(result: Dict[str, Any]) -> Dict[str, float]:
    """``{"toy/mIoU": ..., "train_time_s": ...}`` from a result's metrics (per dataset) and cost."""
    out: Dict[str, float] = {}
    for dset, metrics in (result.get("metrics") or {}).items():
        for name, v in metrics.items():
            out[f"{dset}/{name}"] = v
    out.update({k: v for k, v in (result.get("cost") or {}).items() if isinstance(v, (int, float))})
    return out


def read_result(work_dir: Optional[str]) -> Optional[Dict[str, Any]]:
    if not work_dir:
        return None
    path = Path(work_dir) / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def reconcile(study: optuna.Study, spec: AblationSpec, grace_s: float) -> List[Tuple[int, str]]:
    """Settle RUNNING trials whose worker died: recover finished results, fail the rest."""
    settled = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(t, grace_s):
            continue
        result = read_result(t.user_attrs.get("work_dir"))
        if result and result.get("status") in ("ok", "failed"):
            state, _ = record_result(study, t, result, spec.objective_metric)
            settled.append((t.number, f"recovered as {state.name} from result.json"))
        else:
            storage, tid = storage_of(study), trial_id_of(study, t)
            try:
                storage.set_trial_user_attr(tid, "error", "interrupted: its worker died (killed or lost)")
                storage.set_trial_user_attr(tid, "status", "interrupted")
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
                continue  # its owner was alive after all, and recorded it meanwhile
            settled.append((t.number, "interrupted -> FAIL"))
    return settled


# ----------------------------------------------------------------------------- claims


@dataclass
class Claim:
    """A trial this worker now owns."""

    trial: FrozenTrial
    point: Dict[str, Any]
    work_dir: Path
    trial_id: int  # the storage's id (heartbeats, learning curves)


def _since(study: optuna.Study) -> float:
    return float(study.user_attrs.get("rerun_since", 0.0))


def counted(t: FrozenTrial, since: float) -> bool:
    """Trials started before a ``--rerun`` are history, not results of the current run."""
    return t.datetime_start is None or t.datetime_start.timestamp() >= since


def check_benchmark(study: optuna.Study, benchmark: Optional[str]) -> None:
    """Refuse to add results on ``benchmark`` (the data's version, :func:`ovbench.data.synth.writers.benchmark_version`)
    to a study whose counted results came from another: a study's table must come from one benchmark.
    The ablation file's hash cannot see this (the same file runs on every version of the data)."""
    since = _since(study)
    found = {t.user_attrs.get("benchmark") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
             if counted(t, since)}
    stale = sorted(str(b or "data of unrecorded version") for b in found - {benchmark})
    if stale:
        raise StudyMismatch(
            f"study {study.study_name!r} holds results on {', '.join(stale)}, but its data is now "
            f"{benchmark or 'not a generated benchmark'}; results would mix. Run it again with --rerun (the old "
            "trials stay as history) or --new-study.")


def grid_status(study: optuna.Study, spec: AblationSpec, grace_s: float) -> Tuple[Set[str], Set[str]]:
    """Keys of points that are complete, and of points held by a live worker."""
    since = _since(study)
    done, busy = set(), set()
    for t in study.get_trials(deepcopy=False):
        if not counted(t, since) or "point_key" not in t.user_attrs:
            continue
        if t.state == TrialState.COMPLETE:
            done.add(t.user_attrs["point_key"])
        elif t.state == TrialState.RUNNING and not is_stale(t, grace_s):
            busy.add(t.user_attrs["point_key"])
    return done, busy


def claim_next(study: optuna.Study, spec: AblationSpec, work_root: Path, owner: Owner,
               attempted: Set[str], grace_s: float) -> Optional[Claim]:
    """Under the storage lock: settle dead trials, then claim the next point (None when nothing is left)."""
    with StorageLock(storage_of(study), study.study_name):
        reconcile(study, spec, grace_s)
        if spec.sampler == "grid":
            return _claim_grid(study, spec, work_root, owner, attempted, grace_s)
        return _claim_sampled(study, spec, work_root, owner, attempted, grace_s)


def _new_trial_attrs(point: Dict[str, Any], owner: Owner) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    user = {"seed": point["seed"], "point_key": point_key(point)}
    system = {OWNER_KEY: owner.__dict__, HEARTBEAT_KEY: time.time()}
    return user, system


def _claim_grid(study: optuna.Study, spec: AblationSpec, work_root: Path, owner: Owner,
                attempted: Set[str], grace_s: float) -> Optional[Claim]:
    done, busy = grid_status(study, spec, grace_s)
    for point in spec.grid_points():
        key = point_key(point)
        if key in done or key in busy or key in attempted:
            continue
        attempted.add(key)
        params = {k: encode(v) for k, v in point.items() if k != "seed"}
        user, system = _new_trial_attrs(point, owner)
        template = FrozenTrial(
            number=-1, state=TrialState.RUNNING, value=None, datetime_start=dt.datetime.now(),
            datetime_complete=None, params=params, distributions=distributions(spec), user_attrs=user,
            system_attrs=system, intermediate_values={}, trial_id=-1,
        )
        tid = storage_of(study).create_new_trial(study_id_of(study), template_trial=template)
        return _finish_claim(study, tid, point, work_root)
    return None


def _claim_sampled(study: optuna.Study, spec: AblationSpec, work_root: Path, owner: Owner,
                   attempted: Set[str], grace_s: float) -> Optional[Claim]:
    """tpe/random: ask the sampler while fewer than ``n_trials`` are complete or running."""
    since = _since(study)
    live = [t for t in study.get_trials(deepcopy=False) if counted(t, since) and (
        t.state == TrialState.COMPLETE or (t.state == TrialState.RUNNING and not is_stale(t, grace_s)))]
    if len(live) >= (spec.n_trials or 0) or len(attempted) >= 2 * (spec.n_trials or 0):
        return None
    trial = study.ask(distributions(spec))
    point = {k: decode(v, spec.space[k].options()) for k, v in trial.params.items()}
    point["seed"] = spec.seeds[trial.number % len(spec.seeds)]
    attempted.add(str(trial.number))
    user, system = _new_trial_attrs(point, owner)
    storage, tid = storage_of(study), trial_id_of(study, trial)
    for k, v in user.items():
        storage.set_trial_user_attr(tid, k, v)
    for k, v in system.items():
        storage.set_trial_system_attr(tid, k, v)
    return _finish_claim(study, tid, point, work_root)


def _finish_claim(study: optuna.Study, trial_id: int, point: Dict[str, Any], work_root: Path) -> Claim:
    storage = storage_of(study)
    trial = storage.get_trial(trial_id)
    work_dir = work_root / "trials" / f"trial_{trial.number:04d}"
    storage.set_trial_user_attr(trial_id, "work_dir", str(work_dir))
    return Claim(storage.get_trial(trial_id), point, work_dir, trial_id)


def mark_rerun(study: optuna.Study) -> None:
    """``--rerun``: every point counts as not done from now on (older trials stay as history)."""
    study.set_user_attr("rerun_since", time.time())


def progress_counts(study: optuna.Study, spec: AblationSpec, grace_s: float) -> Tuple[int, int]:
    """(finished points, total points) for the progress bar."""
    if spec.sampler == "grid":
        done, _ = grid_status(study, spec, grace_s)
        return len(done), len(spec.grid_points())
    since = _since(study)
    n = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if counted(t, since))
    return n, spec.n_trials or 0
