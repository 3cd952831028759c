"""Where an ablation's optuna study lives: storage URLs, opening them, and the checks that make a bad one one clear line.

Any SQLAlchemy URL (SQLite on one machine, PostgreSQL across machines) or
``journal:PATH`` for a journal file. A local file is checked before optuna touches
it (exists or creatable, writable, a real SQLite file, not held locked); every
failure is a :class:`StorageError` naming the URL (never its password) and what to do.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import optuna

from ovbench.errors import InputError
from ovbench.sweep.spec import AblationSpec, storage_url_problem

SQLITE_TIMEOUT_S = 120.0  # how long to wait for an SQLite file another process holds locked
SQLITE_HEADER = b"SQLite format 3\x00"
SCHEMA_RACE_RETRIES = 5


class StorageError(InputError, RuntimeError):
    """An optuna storage cannot be opened or used: the message names the URL or path and what to do."""


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
            hint = ("install psycopg 3: pip install 'psycopg[binary]' (make venv installs it)"
                    if url.startswith(("postgresql://", "postgresql+psycopg://"))
                    else "install the driver SQLAlchemy names for this URL's scheme")
            raise StorageError(f"storage {display_url(url)}: its database driver is missing ({e}); {hint}") from None
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
