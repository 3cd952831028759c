"""A private PostgreSQL server for tests: Debian's binaries, a temporary data dir, 127.0.0.1 only.

``initdb`` refuses to run as root, so under root the server runs as ``nobody``
(through ``runuser``), owning its temporary directory. Password authentication
(scram-sha-256) is on, so URLs carry a real password, as users type them.
Missing binaries fail the test with the command that installs them: a
PostgreSQL test must never be skipped silently.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List

import pytest

PASSWORD = "pg-s3cret-9f2c"  # asserted absent from every output line
USER = "ovbench"
INSTALL_HINT = "apt-get install postgresql (Debian/Ubuntu; the tests use its initdb and pg_ctl)"


def find_bin_dir() -> Path:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<v>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) not found; install them: {INSTALL_HINT}")


def _as_server_user(cmd: List[str]) -> List[str]:
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("runuser"):
        pytest.fail("running as root, initdb needs an unprivileged user; `runuser` (util-linux) is missing")
    return ["runuser", "-u", "nobody", "--", *cmd]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: List[str]) -> None:
    proc = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


@contextlib.contextmanager
def private_postgres(database: str = "ovbench") -> Iterator[str]:
    """Start a server, create ``database``, yield its URL (with the password); stop and delete on exit."""
    bins = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="ovbench-pg-"))
    data, pwfile, log = root / "data", root / "pwfile", root / "server.log"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        import pwd

        nobody = pwd.getpwnam("nobody")
        for p in (root, pwfile):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
    port = _free_port()
    started = False
    try:
        _run([str(bins / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
              f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C"])
        _run([str(bins / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
              f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=100", "start"])
        started = True
        url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}"
        import psycopg

        with psycopg.connect(f"{url}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        yield f"{url}/{database}"
    finally:
        if started:
            _run([str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
