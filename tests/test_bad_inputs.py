"""Bad inputs other than ablation-file content (issue 16): storages, study names, the lock, reports,
checkpoints, output folders, CLI flags. Each gives one ``error:`` line and exit code 2, creates nothing
and deletes nothing; no study can harm another."""
from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ovbench.cli import main
from ovbench.sweep import executor as ex
from ovbench.sweep import storage as storage_module
from ovbench.sweep import study as st
from ovbench.sweep.run import prepare
from ovbench.sweep.spec import load_spec

SPEC = """\
study: {study}
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [4, 8]
datasets: [toy]
work_dir: {work}
"""


def write_spec(tmp: Path, study: str = "s") -> Path:
    path = tmp / f"{study}.yaml"
    path.write_text(SPEC.format(study=study, work=tmp / "work" / study))
    return path


def files_under(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("waiting")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ----------------------------------------------------------------------------- 1: no study can harm another


def test_lock_never_deletes_a_study_that_is_not_a_lock(tmp_path):
    """A study named like X's lock (made by hand or an older ovbench) with a COMPLETE trial survives."""
    storage = st.open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    victim = optuna.create_study(storage=storage, study_name="x.ovbench-lock")
    victim.enqueue_trial({})
    victim.optimize(lambda t: 1.0, n_trials=1)
    with pytest.raises(st.StorageError, match="not an ovbench lock"):
        with st.StorageLock(storage, "x", timeout_s=0.0):
            pass
    kept = optuna.load_study(storage=storage, study_name="x.ovbench-lock")
    assert [t.state for t in kept.trials] == [TrialState.COMPLETE]


def test_stale_lock_is_broken_but_a_lock_with_a_trial_is_not(tmp_path):
    storage = st.open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    sid = storage.create_new_study(st.LOCK_DIRECTIONS, "y.ovbench-lock")  # a holder died: no owner, old
    assert st.is_lock(storage, sid)
    with st.StorageLock(storage, "y", timeout_s=0.0):
        pass
    assert "y.ovbench-lock" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}
    sid = storage.create_new_study(st.LOCK_DIRECTIONS, "z.ovbench-lock")
    storage.create_new_trial(sid)  # not a lock any more: ovbench's locks never hold trials
    assert not st.is_lock(storage, sid)


def test_lock_named_study_cannot_be_run(tmp_path, capsys):
    spec = write_spec(tmp_path, "s")
    spec.write_text(spec.read_text().replace("study: s", "study: s.ovbench-lock"))
    assert main(["run", str(spec), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:1: study: may not end with '.ovbench-lock'" in err and "Traceback" not in err
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("name", [".", "..", "../x", "a/b", "s.ovbench-lock"])
def test_report_by_a_name_that_escapes_is_refused(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    assert main(["report", name, "--no-plots"]) == 2
    assert "neither an ablation file nor a study name" in one_error_line(capsys)
    assert files_under(tmp_path) == []


# ----------------------------------------------------------------------------- 7: storages


@pytest.fixture
def spec_path(tmp_path, monkeypatch):
    monkeypatch.setenv("OVBENCH_DATA_ROOT", str(tmp_path / "data"))
    return write_spec(tmp_path)


def run_with_storage(spec: Path, url: str) -> int:
    return main(["run", str(spec), "--no-progress", "--storage", url])


@pytest.mark.parametrize("url,needle", [
    ("sqlite//x.db", "not a storage URL"),
    ("mongodb://host/db", "unsupported scheme 'mongodb'"),
    ("sqlite://", "in-memory"),
    ("journal:", "journal: needs a file path"),
])
def test_malformed_storage_urls(spec_path, capsys, url, needle):
    assert run_with_storage(spec_path, url) == 2
    line = one_error_line(capsys)
    assert needle in line and url in line


def test_storage_folder_that_cannot_be_created(spec_path, tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    assert run_with_storage(spec_path, f"sqlite:///{blocker / 'sub' / 'optuna.db'}") == 2
    line = one_error_line(capsys)
    assert "cannot create the folder" in line and str(blocker) in line


@pytest.mark.parametrize("damage", ["header", "truncated", "empty"])
def test_corrupted_sqlite_storage(spec_path, tmp_path, capsys, damage):
    db = tmp_path / "work" / "s" / "optuna.db"
    assert main(["report", str(spec_path)]) == 2 and "no optuna storage" in capsys.readouterr().err
    st.open_study(load_spec(spec_path), st.open_storage(st.default_storage_url(db.parent)), "s")
    raw = db.read_bytes()
    db.write_bytes({"header": b"garbage!" * 4 + raw[32:], "truncated": raw[: len(raw) // 3], "empty": b""}[damage])
    before = db.read_bytes()
    assert main(["run", str(spec_path), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert str(db) in line and ("not an SQLite database" in line or "damaged" in line), line
    assert db.read_bytes() == before  # untouched


def test_read_only_storage_says_so(spec_path, tmp_path, capsys, monkeypatch):
    """Root ignores file modes, so the read-only answer of the filesystem is simulated."""
    st.open_study(load_spec(spec_path), st.open_storage(st.default_storage_url(tmp_path / "work" / "s")), "s")
    monkeypatch.setattr(storage_module.os, "access", lambda path, mode: mode != storage_module.os.W_OK)
    assert main(["run", str(spec_path), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "read-only" in line and "optuna.db" in line


def test_locked_sqlite_storage_says_it_waits_then_fails(spec_path, tmp_path, capsys, monkeypatch):
    db = tmp_path / "work" / "s" / "optuna.db"
    st.open_study(load_spec(spec_path), st.open_storage(st.default_storage_url(db.parent)), "s")
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
                               "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)", str(db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(storage_module, "SQLITE_TIMEOUT_S", 1.0)
        start = time.time()
        assert main(["run", str(spec_path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"waiting up to 1 s for {db}: another process holds its lock" in err
        assert f"error: {db} stayed locked" in err and "Traceback" not in err
        assert time.time() - start < 30
    finally:
        holder.kill()
        holder.wait()


def test_worker_never_creates_a_storage(spec_path, tmp_path, capsys):
    assert main(["worker", str(spec_path), "--no-progress"]) == 2
    assert "no optuna storage" in one_error_line(capsys)
    assert not (tmp_path / "work").exists()


# ----------------------------------------------------------------------------- 12, 13: reports


def test_report_of_a_missing_study_creates_nothing(spec_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(spec_path), "--no-plots"]) == 2
    line = one_error_line(capsys)
    assert str(tmp_path / "work" / "s" / "optuna.db") in line and "`ovbench run" in line
    assert files_under(tmp_path) == ["s.yaml"]
    # a storage that exists but holds another study: named, with the command, still nothing written
    st.open_study(load_spec(spec_path), st.open_storage(f"sqlite:///{tmp_path / 'other.db'}"), "other")
    before = (tmp_path / "other.db").read_bytes()
    assert main(["report", "ghost", "--storage", f"sqlite:///{tmp_path / 'other.db'}", "--no-plots"]) == 2
    line = one_error_line(capsys)
    assert "no study 'ghost'" in line and "other.db" in line and "ovbench run" in line
    assert (tmp_path / "other.db").read_bytes() == before and not (tmp_path / "reports").exists()


def test_report_header_has_no_nan_for_failed_trials(spec_path, tmp_path):
    from ovbench.report.cli import build_report

    spec = load_spec(spec_path)
    study = st.open_study(spec, st.open_storage(st.default_storage_url(st.default_work_root(spec))), spec.study)
    owner, attempted = st.Owner.me(), set()
    ok = {"status": "ok", "metrics": {"toy": {"mIoU": 5.0}}, "git_commit": "abc123", "device": "cpu"}
    for result in (ok, {"status": "failed", "error": "RuntimeError: boom"}):
        claim = st.claim_next(study, spec, tmp_path / "w", owner, attempted, 60)
        st.record_result(study, claim.trial, result, spec.objective_metric)
    text = build_report(str(spec_path), ["md"], tmp_path / "reports", plots_on=False)["md"]
    header = text.splitlines()[4]
    assert "commit(s) abc123;" in header and "device(s) cpu." in header and "nan" not in header
    assert "different machine lines" not in text  # one machine line: no warning


def test_report_header_warns_when_trials_ran_on_different_machines(spec_path, tmp_path):
    from ovbench.report.cli import build_report

    spec = load_spec(spec_path)
    study = st.open_study(spec, st.open_storage(st.default_storage_url(st.default_work_root(spec))), spec.study)
    owner, attempted = st.Owner.me(), set()
    for device in ("cpu (A, x86_64 AVX2, 2 cores, torch threads=1)", "cpu (B, x86_64 AVX512, 2 cores, torch threads=1)"):
        claim = st.claim_next(study, spec, tmp_path / "w", owner, attempted, 60)
        st.record_result(study, claim.trial, {"status": "ok", "metrics": {"toy": {"mIoU": 5.0}}, "git_commit": "abc",
                                              "device": device}, spec.objective_metric)
    text = build_report(str(spec_path), ["md"], tmp_path / "reports", plots_on=False)["md"]
    assert "ran on 2 different machine lines" in text
    assert "threads=1), cpu (B" in text  # both named in the header


# ----------------------------------------------------------------------------- 6: workers, CLI flags


def test_workers_capped_at_the_points(spec_path):
    args = argparse.Namespace(ablation=str(spec_path), storage=None, work_dir=None, workers=200, executor=None,
                              rerun=False, new_study=False, heartbeat=1.0, grace=60.0, no_progress=True)
    _, opts = prepare(args)
    assert opts.workers == 2  # two grid points x one seed


def test_workers_zero_means_the_cores_on_the_command_line_as_in_the_file(spec_path, monkeypatch):
    from ovbench.sweep.run import planned_workers

    monkeypatch.setattr("os.cpu_count", lambda: 1)
    spec = load_spec(spec_path)
    assert planned_workers(argparse.Namespace(workers=0), spec) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert planned_workers(argparse.Namespace(workers=0), spec) == 2  # capped at the two points


@pytest.mark.parametrize("flag", [["--workers", "-1"], ["--workers", "100000"], ["--grace", "-1"],
                                  ["--heartbeat", "nan"], ["--workers", "many"]])
def test_bad_run_flags_are_usage_errors(spec_path, tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as info:
        main(["run", str(spec_path), *flag])
    assert info.value.code == 2
    assert f"argument {flag[0]}: expected" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


# ----------------------------------------------------------------------------- 8, 9: trial failures


def test_trial_dir_failure_is_recorded_with_its_reason(spec_path, tmp_path, capsys):
    """A work dir that cannot be created fails each trial (reason recorded and printed); the worker lives on
    and no trial is left RUNNING."""
    args = argparse.Namespace(ablation=str(spec_path), storage=None, work_dir=None, workers=2, executor=None,
                              rerun=False, new_study=False, heartbeat=1.0, grace=60.0, no_progress=True)
    spec, opts = prepare(args)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the trials folder should be")
    opts.work_root = blocker
    ran = ex.run_local(spec, opts)
    assert sorted(ran) == [0, 1]
    out = capsys.readouterr().out
    assert out.count(": FAIL cannot prepare the trial directory") == 2, out
    study = optuna.load_study(storage=st.open_storage(opts.storage_url), study_name=spec.study)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert all("cannot prepare the trial directory" in t.user_attrs["error"] for t in study.trials)


def test_missing_objective_failure_line_gives_the_reason(spec_path, tmp_path):
    spec = load_spec(spec_path)
    study = st.open_study(spec, st.open_storage(st.default_storage_url(st.default_work_root(spec))), spec.study)
    claim = st.claim_next(study, spec, tmp_path / "w", st.Owner.me(), set(), 60)
    state, result = st.record_result(study, claim.trial, {"status": "ok", "metrics": {"toy": {"aAcc": 1.0}}},
                                     spec.objective_metric)
    assert state == TrialState.FAIL
    line = ex.summary_line(spec, claim, result, state)
    assert "FAIL objective toy/mIoU is not among the trial's metrics (toy/aAcc)" in line
    assert "not among" in study.trials[0].user_attrs["error"]


# ----------------------------------------------------------------------------- 11, CLI


@pytest.mark.parametrize("flag, needle", [(["--scale", "-1"], "positive"), (["--scale", "0"], "positive"),
                                          (["--scale", "nan"], "positive"), (["--size", "0"], "positive"),
                                          (["--seed", "-1"], "integer in [0, 4294967295]")])
def test_synth_flags_out_of_range_are_usage_errors(flag, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", "synth", "--out", str(tmp_path / "s"), *flag])
    assert info.value.code == 2 and f"{flag[0]}: expected a{'n' if needle[0] == 'i' else ''} {needle}" in \
        capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_synth_out_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep me")
    assert main(["data", "synth", "--out", str(target)]) == 2
    assert "exists and is not a folder" in one_error_line(capsys)
    assert target.read_text() == "keep me"


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys):
    from ovbench import cli

    monkeypatch.setitem(cli.COMMANDS, "env", ("ovbench.env", ""))
    monkeypatch.setattr("ovbench.env.run", lambda args: 1 / 0)
    assert main(["env"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ZeroDivisionError: division by zero") and "Traceback" not in err
    assert "ovbench --debug env" in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "env"])


def test_trial_process_that_dies_without_a_result_names_its_log(tmp_path):
    """A trial process that ends before writing ``result.json`` (here: Python cannot even start) is a
    failed trial whose error says how it ended and where its log is."""
    work = tmp_path / "trial_0000"
    opts = ex.RunOptions(storage_url="", study_name="s", work_root=tmp_path, heartbeat_s=0.2,
                         extra_env={"PYTHONHOME": str(tmp_path / "no-python-here")})
    result = ex.run_subprocess({"work_dir": str(work), "seed": 0}, opts, beat=lambda: None)
    assert result["status"] == "failed"
    assert "exited with code 1 without a result" in result["error"], result
    assert f"see {work / 'trial.log'}" in result["error"]
    assert "encodings" in result["log_tail"]  # Python's own words on why it could not start


def test_a_point_that_cannot_build_its_model_stops_the_dry_run_and_the_run(tmp_path, monkeypatch, capsys):
    """A block size that does not divide the tiny CLIP's width 128 fails before any storage exists,
    naming the point and the expected form (not once per trial, after the study started)."""
    from conftest import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    path = tmp_path / "bad_q.yaml"
    path.write_text(f"""\
study: bad_q
base_config: configs/synth/hclip.py
space:
  model.clip.peft.q: [32, 17]
seeds: [0, 1, 2]
reference: "q=32"
datasets: [synth_large]
work_dir: {tmp_path / 'work'}
""")
    for extra in (["--dry-run"], []):
        assert main(["run", str(path)] + extra) == 2
        err = capsys.readouterr().err
        assert "1 point(s) of the space cannot build their model" in err
        assert "trial 3 (model.clip.peft.q=17  seed=0)" in err and "expected a positive divisor of 128" in err
        assert "Traceback" not in err
    assert not (tmp_path / "work").exists()
