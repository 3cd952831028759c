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
import os
import socket
import sqlite3
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from ovbench.errors import InputError
from ovbench.sweep.spec import LOCK_SUFFIX, AblationSpec, storage_url_problem

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT_KEY = "ovbench:heartbeat"
OWNER_KEY = "ovbench:owner"
LOCK_TIMEOUT_S = 120.0
SQLITE_TIMEOUT_S = 120.0  # how long to wait for an SQLite file another process holds locked
SQLITE_HEADER = b"SQLite format 3\x00"
#: a lock study's directions: optuna stores them with the study's name in one write, so a lock is marked as
#: one from its first instant (a user attribute would leave a window where a holder killed between two
#: writes leaves an unmarked lock); ovbench's own studies have one direction, so none looks like a lock
LOCK_DIRECTIONS = [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MAXIMIZE,
                   optuna.study.StudyDirection.MINIMIZE]
SCHEMA_RACE_RETRIES = 5


class StudyMismatch(InputError, RuntimeError):
    """The ablation file changed since the study was created (its content hash differs)."""


class StorageError(InputError, RuntimeError):
    """An optuna storage cannot be opened or used: the message names the URL or path and what to do."""


# ----------------------------------------------------------------------------- storage


def default_work_root(spec: AblationSpec) -> Path:
    """Where a study's trials and default SQLite file live."""
    return Path(spec.work_dir or Path("work_dirs") / "sweeps" / spec.study).resolve()


def default_storage_url(work_root: Path) -> str:
    return f"sqlite:///{work_root / 'optuna.db'}"


def display_url(url: str) -> str:
    """The storage URL as it may be printed or logged: a password becomes ``***``.

    Users type ``postgresql://user:pw@host/db``; every line ovbench prints that
    names the storage (the run summary, errors) goes through this.
    """
    if "://" not in url or "@" not in url:
        return url  # sqlite:///path, journal:PATH: no credentials
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not an SQLAlchemy URL: hide whatever stands before the '@'
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def open_storage(url: str, create: bool = True) -> optuna.storages.BaseStorage:
    """An optuna storage from a URL: any SQLAlchemy URL, or ``journal:PATH`` for a journal file.

    ``create=False`` (reports, joining workers) never creates a file or folder: a local storage
    must already exist. Every failure is a :class:`StorageError` naming the URL and what to do.
    """
    problem = storage_url_problem(url)
    if problem:
        raise StorageError(f"storage {display_url(url)!r}: {problem}")
    path = local_storage_path(url)
    if path is not None:
        _check_local_storage(url, path, create)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    return _open_rdb(url, {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if path is not None else {})


def _open_rdb(url: str, engine_kwargs: Dict[str, Any]) -> optuna.storages.RDBStorage:
    """optuna's RDB storage; a driver, server or file problem is one clear line with no password in it."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except ImportError as e:
            raise StorageError(f"storage {display_url(url)}: its database driver is missing ({e}). For "
                               "postgresql:// install psycopg 3: pip install 'psycopg[binary]' (make venv "
                               "installs it)") from None
        except (IntegrityError, ProgrammingError) as e:
            # PostgreSQL: processes opening a fresh database together race to create optuna's
            # tables ("... already exists"); once one has, opening again succeeds
            if attempt == SCHEMA_RACE_RETRIES:
                raise StorageError(_open_failure(url, e)) from None
            time.sleep(0.5 * (attempt + 1))
        except Exception as e:  # unreachable server, bad credentials, damaged file: the user's to fix
            raise StorageError(_open_failure(url, e)) from None
    raise AssertionError("unreachable")


def _open_failure(url: str, error: Exception) -> str:
    return (f"cannot open the optuna storage {display_url(url)}: {_hide_password(_reason(error), url)}; check "
            "the URL, that the server or file is reachable and that the driver is installed")


def local_storage_path(url: str) -> Optional[Path]:
    """The file behind a ``sqlite:///PATH`` or ``journal:PATH`` URL (None for a server)."""
    if url.startswith("journal:"):
        return Path(url[len("journal:"):]).resolve()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):].split("?", 1)[0]).resolve()
    return None


def _reason(e: BaseException) -> str:
    """The first line of an exception, without SQLAlchemy's background link."""
    text = str(getattr(e, "orig", None) or e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _check_local_storage(url: str, path: Path, create: bool) -> None:
    """A local storage file must be usable before optuna touches it: there (or creatable), writable when
    trials will be recorded, a real SQLite database, and not held locked (said, then waited for)."""
    if not path.exists():
        if not create:
            raise StorageError(f"no optuna storage at {path} (nothing has run with {url}); `ovbench run "
                               "<ablation file>` creates it, or pass the --storage/--work-dir it ran with")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the folder {path.parent} for the storage {url} ({e.strerror}); "
                               "choose a writable --work-dir or --storage") from None
        if not os.access(path.parent, os.W_OK):
            raise StorageError(f"cannot create the storage {path}: {path.parent} is read-only; choose a "
                               "writable --work-dir or --storage")
        return
    if not path.is_file():
        raise StorageError(f"the storage {path} is not a file; point --storage/--work-dir at an optuna storage")
    if create and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        raise StorageError(f"the storage {path} (or its folder) is read-only, and a run records its trials "
                           "there; make it writable or copy it elsewhere (`ovbench report` can read it as is)")
    if url.startswith("sqlite:///"):
        _check_sqlite(path)


def _check_sqlite(path: Path) -> None:
    """A real, intact SQLite file; if another process holds it locked, say so and wait for it."""
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StorageError(f"{path} is not an SQLite database (empty, overwritten or another file); move it "
                           "away to start the study afresh, or point --storage/--work-dir at the right one")
    try:
        _sqlite_check(path, timeout=2.0)  # a writer's commit holds the lock for milliseconds: no message
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):  # e.g. a hot journal a killed writer left: optuna's connection rolls it back
            return
        print(f"waiting up to {SQLITE_TIMEOUT_S:.0f} s for {path}: another process holds its lock "
              "(e.g. an `ovbench run` writing, or an sqlite shell)", file=sys.stderr, flush=True)
        try:
            _sqlite_check(path, timeout=SQLITE_TIMEOUT_S)
        except sqlite3.OperationalError as e2:
            raise StorageError(f"{path} stayed locked for {SQLITE_TIMEOUT_S:.0f} s ({e2}); find the process "
                               f"holding it (`fuser {path}`), let it finish or stop it, then run again") from None
    except sqlite3.DatabaseError as e:
        raise StorageError(f"{path} is a damaged SQLite database ({e}); restore it from a copy or move it away "
                           "to start the study afresh") from None


def _sqlite_check(path: Path, timeout: float) -> None:
    """Open read-only (never creates or changes the file) and verify every page."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        rows = con.execute("PRAGMA quick_check").fetchall()
    finally:
        con.close()
    if rows != [("ok",)]:
        raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in rows[:3]))


def _hide_password(text: str, url: str) -> str:
    """``text`` with the URL's password (if any) replaced: a driver may echo connection parameters."""
    if "@" not in url:
        return text
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


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
        study.set_user_attr("paper", spec.paper)
        study.set_user_attr("description", spec.description)
    elif stored != spec.content_hash:
        raise StudyMismatch(
            f"{spec.path}: the ablation file changed since study {name!r} was created "
            f"(stored hash {stored}, file hash {spec.content_hash}); results would mix. "
            f"Restore the file, run with --new-study (study '{spec.study}-{spec.content_hash}'), "
            f"or rename 'study:' in the file."
        )
    return study


# ----------------------------------------------------------------------------- mutex


class StorageLock:
    """A mutex held in the optuna storage: the holder is whoever created the lock study.

    A holder killed inside the (short) critical section leaves a lock study; it
    is broken at once when its owner process is gone (same host), else after
    ``timeout_s`` (deleted by id, so a fresh lock taken by someone else in
    between is never deleted). Only a study that :func:`is_lock` is ever
    deleted: a study that merely has the lock's name (made by an older ovbench
    or by hand) is reported, never touched.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, name: str, timeout_s: float = LOCK_TIMEOUT_S):
        self.storage, self.name, self.timeout_s = storage, f"{name}{LOCK_SUFFIX}", timeout_s
        self._id: Optional[int] = None
        self._first_seen: Dict[int, float] = {}

    def __enter__(self) -> "StorageLock":
        delay = 0.05
        while True:
            try:
                self._id = self.storage.create_new_study(LOCK_DIRECTIONS, self.name)
                self.storage.set_study_user_attr(self._id, "acquired_at", time.time())
                self.storage.set_study_user_attr(self._id, "owner", _owner_dict())
                return self
            except optuna.exceptions.DuplicatedStudyError:
                self._break_if_stale()
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)

    def _break_if_stale(self) -> None:
        try:
            sid = self.storage.get_study_id_from_name(self.name)
            attrs = self.storage.get_study_user_attrs(sid)
            lock = is_lock(self.storage, sid)
            if not lock:  # a verdict that deletes nothing but stops the run: make sure on a second look
                time.sleep(0.2)
                if self.storage.get_study_id_from_name(self.name) != sid or is_lock(self.storage, sid):
                    return
        except KeyError:  # released meanwhile
            return
        if not lock:
            raise StorageError(f"the storage holds a study named {self.name!r} that is not an ovbench lock, so "
                               "ovbench cannot take its lock and will not delete it; rename or delete that study "
                               "yourself (optuna delete-study), or use another storage")
        first = self._first_seen.setdefault(sid, time.time())
        since = attrs.get("acquired_at") or first
        owner_dead = bool(attrs.get("owner")) and Owner(**attrs["owner"]).alive() is False
        if owner_dead or time.time() - since > self.timeout_s:
            try:
                self.storage.delete_study(sid)
            except KeyError:
                pass

    def __exit__(self, *exc: Any) -> None:
        if self._id is not None:
            try:
                self.storage.delete_study(self._id)
            except KeyError:
                pass
            self._id = None


def is_lock(storage: optuna.storages.BaseStorage, study_id: int) -> bool:
    """A lock study: created by :class:`StorageLock` (its directions) and without a single trial.
    Raises KeyError when the study is gone (a released lock: the caller must not mistake it for a non-lock)."""
    directions = storage.get_study_directions(study_id)
    if not directions:  # every study has one; none = deleted between optuna's two reads (SQLite autocommit)
        raise KeyError(study_id)
    return directions == LOCK_DIRECTIONS and not storage.get_all_trials(study_id, deepcopy=False)


def _owner_dict() -> Dict[str, Any]:
    global _ME
    if _ME is None:
        _ME = Owner.me().__dict__
    return _ME


_ME: Optional[Dict[str, Any]] = None


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


def trial_point(spec: AblationSpec, trial: FrozenTrial) -> Dict[str, Any]:
    """The decoded params + seed of a trial (the grid point it ran)."""
    point = {k: decode(v, spec.space[k].options() if k in spec.space else None) for k, v in trial.params.items()}
    point["seed"] = trial.user_attrs.get("seed")
    return point


def point_key(point: Dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


# ----------------------------------------------------------------------------- liveness


@dataclass(frozen=True)
class Owner:
    """Who runs a trial: host, pid and that process's start time (so a reused pid is not alive)."""

    host: str
    pid: int
    started: float
    worker: str

    @staticmethod
    def me() -> "Owner":
        import psutil

        return Owner(socket.gethostname(), os.getpid(), psutil.Process().create_time(), uuid.uuid4().hex[:8])

    def alive(self) -> Optional[bool]:
        """True/False on this host; None when the owner is on another host (use the heartbeat)."""
        if self.host != socket.gethostname():
            return None
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


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
    storage, tid = study._storage, trial._trial_id
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
    for key in ("metrics", "cost", "config_hash", "git_commit", "device", "work_dir", "error", "log_tail",
                "status", "predictions"):
        if key in result:
            storage.set_trial_user_attr(tid, key, result[key])
    for key, number in flat_metrics(result).items():  # one number each: dashboards sort and plot these
        if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number):
            storage.set_trial_user_attr(tid, key, number)
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
            storage = study._storage
            storage.set_trial_user_attr(t._trial_id, "error", "interrupted: its worker died (killed or lost)")
            storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except (ValueError, RuntimeError):
                pass
            settled.append((t.number, "interrupted -> FAIL"))
    return settled


# ----------------------------------------------------------------------------- claims


@dataclass
class Claim:
    """A trial this worker now owns."""

    trial: FrozenTrial
    point: Dict[str, Any]
    work_dir: Path


def _since(study: optuna.Study) -> float:
    return float(study.user_attrs.get("rerun_since", 0.0))


def counted(t: FrozenTrial, since: float) -> bool:
    """Trials started before a ``--rerun`` are history, not results of the current run."""
    return t.datetime_start is None or t.datetime_start.timestamp() >= since


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
    with StorageLock(study._storage, study.study_name):
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
        tid = study._storage.create_new_trial(study._study_id, template_trial=template)
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
    for k, v in user.items():
        study._storage.set_trial_user_attr(trial._trial_id, k, v)
    for k, v in system.items():
        study._storage.set_trial_system_attr(trial._trial_id, k, v)
    return _finish_claim(study, trial._trial_id, point, work_root)


def _finish_claim(study: optuna.Study, trial_id: int, point: Dict[str, Any], work_root: Path) -> Claim:
    trial = study._storage.get_trial(trial_id)
    work_dir = work_root / "trials" / f"trial_{trial.number:04d}"
    study._storage.set_trial_user_attr(trial_id, "work_dir", str(work_dir))
    return Claim(study._storage.get_trial(trial_id), point, work_dir)


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
