"""A mutex held in the optuna storage itself, and who holds things (host, pid, start time).

optuna has no cross-process lock, and its claims of WAITING trials cover one
trial at a time; ovbench's claim (reconcile dead workers, then pick a point) is a
critical section over the whole study, so it holds this lock. The storage is the
only shared medium, so the lock is a study only one process can create (study names
are unique in every optuna storage). Liveness of a holder is same-host pid +
process start time, which optuna lacks (its heartbeats are RDB-only and only fail
trials); on other hosts a timeout applies.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import optuna

from ovbench.sweep.spec import LOCK_SUFFIX
from ovbench.sweep.storage import StorageError

LOCK_TIMEOUT_S = 120.0
#: a lock study's directions: optuna stores them with the study's name in one write, so a lock is marked as
#: one from its first instant (a user attribute would leave a window where a holder killed between two
#: writes leaves an unmarked lock); ovbench's own studies have one direction, so none looks like a lock
LOCK_DIRECTIONS = [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MAXIMIZE,
                   optuna.study.StudyDirection.MINIMIZE]


@dataclass(frozen=True)
class Owner:
    """Who runs a trial: host, pid and that process's start (so a reused pid is not alive).

    The start is kept as seconds since boot, not as the wall-clock time psutil reports: Linux
    derives that from ``btime`` (wall clock minus uptime, truncated to whole seconds), which moves
    by a second whenever the clock is slewed across a second boundary or a VM is resumed. Comparing
    wall-clock start times then judged a live worker dead, and a sibling failed its running trial
    as interrupted (seen as ``UpdateFinishedTrialError`` in CI). ``started`` (wall clock) stays for
    people reading the storage and for owners written by older versions.
    """

    host: str
    pid: int
    started: float
    worker: str
    since_boot: Optional[float] = None
    boot_id: Optional[str] = None

    @staticmethod
    def me() -> "Owner":
        import psutil

        proc = psutil.Process()
        return Owner(socket.gethostname(), os.getpid(), proc.create_time(), uuid.uuid4().hex[:8],
                     _since_boot(proc), _boot_id())

    def alive(self) -> Optional[bool]:
        """True/False on this host; None when the owner is on another host (use the heartbeat)."""
        if self.host != socket.gethostname():
            return None
        import psutil

        try:
            proc = psutil.Process(self.pid)
            if self.since_boot is None:  # written by an older ovbench
                same = abs(proc.create_time() - self.started) < 1.0
            else:  # a btime race between the two reads is 1 s at most; a reused pid started elsewhen
                same = abs(_since_boot(proc) - self.since_boot) < 1.5 and (
                    self.boot_id is None or self.boot_id == _boot_id())
            return same and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def _since_boot(proc: Any) -> float:
    """When ``proc`` started, in seconds since boot: immune to wall-clock changes (see :class:`Owner`)."""
    import psutil

    return proc.create_time() - psutil.boot_time()


def _boot_id() -> Optional[str]:
    """This boot's id on Linux (a rebooted host reuses pids and start offsets), else None."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


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
