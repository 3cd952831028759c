"""Sweeps end to end: failures recorded, SIGKILL + resume exactly once, concurrent runs, spec guard.

The trials here are real (subprocess, mmengine Runner, the smoke FCN) but only
2 iterations long, so a trial costs its process start-up (~10 s on 2 cores).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ovbench.adapters.optuna import storage_of
from ovbench.evaluation.image_stats import load_image_stats
from ovbench.sweep import study as st
from ovbench.sweep.run import prepare
from ovbench.sweep.spec import load_spec

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
study: {study}
base_config: configs/smoke/tiny_fcn.py
space:
  {key}: {values}
seeds: [0]
datasets: [toy]
overrides:
  train_cfg.max_iters: 2
  train_cfg.val_interval: 1000
  default_hooks.checkpoint.interval: 1000
work_dir: {work}
executor: {{type: local, workers: 1, timeout_min: 5}}
"""


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("OVBENCH_DATA_ROOT", str(tmp_path / "data"))
    return tmp_path


def write_spec(tmp: Path, study: str, key: str = "model.decode_head.channels", values: str = "[4, 8, 16]") -> Path:
    path = tmp / f"{study}.yaml"
    path.write_text(SPEC.format(study=study, key=key, values=values, work=tmp / "work" / study))
    return path


def run_cli(spec: Path, *extra: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ovbench.cli", "run", str(spec), "--no-progress", "--heartbeat", "1", *extra]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def load(spec_path: Path) -> optuna.Study:
    spec = load_spec(spec_path)
    url = st.default_storage_url(st.default_work_root(spec))
    return optuna.load_study(storage=st.open_storage(url), study_name=spec.study)


def complete_counts(study: optuna.Study) -> collections.Counter:
    return collections.Counter(t.user_attrs["point_key"] for t in study.get_trials(states=(TrialState.COMPLETE,)))


@pytest.mark.slow
def test_failing_trial_is_recorded_and_sweep_goes_on(data_env):
    # ResNet depth 19 does not exist: that trial raises inside mmengine; depth 18 must still complete
    spec = write_spec(data_env, "fail", key="model.backbone.depth", values="[19, 18]")
    proc = run_cli(spec)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out  # not every point completed
    study = load(spec)
    by_state = {t.state: t for t in study.get_trials()}
    assert set(by_state) == {TrialState.COMPLETE, TrialState.FAIL}, out
    failed = by_state[TrialState.FAIL]
    assert failed.params["model.backbone.depth"] == 19
    assert "KeyError" in failed.user_attrs["error"] and "19" in failed.user_attrs["error"]
    assert "invalid depth 19" in failed.user_attrs["log_tail"]
    done = by_state[TrialState.COMPLETE]
    assert done.params["model.backbone.depth"] == 18
    assert done.user_attrs["metrics"]["toy"]["mIoU"] >= 0
    cost = done.user_attrs["cost"]
    assert cost["trainable_params"] > 0 and cost["iters"] == 2 and cost["train_time_s"] > 0
    assert (Path(done.user_attrs["work_dir"]) / "config.py").is_file()
    # the per-image statistics beside result.json recompute the stored figures (issue 19)
    stats = load_image_stats(Path(done.user_attrs["work_dir"]) / "image_stats.npz")["toy"]["iou"]
    recomputed = stats.metrics()
    stored = done.user_attrs["metrics"]["toy"]
    assert stats.num_images > 0 and {k: round(recomputed[k], 4) for k in stored} == stored
    assert "FAIL" in out and "COMPLETE" in out  # one line per finished trial


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_runs_each_point_once(data_env):
    spec = write_spec(data_env, "kill")
    proc = run_cli(spec, start_new_session=True)
    deadline = time.time() + 240
    study = None
    while time.time() < deadline:  # kill once one trial is done and the next is training
        time.sleep(1)
        try:
            study = load(spec)
        except (KeyError, Exception):
            continue
        states = [t.state for t in study.get_trials()]
        if states.count(TrialState.COMPLETE) >= 1 and TrialState.RUNNING in states:
            break
    running = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert running, "the sweep never reached a second trial"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    log = Path(running[0].user_attrs["work_dir"]) / "trial.log"
    assert log.exists()
    again = run_cli(spec)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    study = load(spec)
    counts = complete_counts(study)
    assert len(counts) == 3 and set(counts.values()) == {1}, counts
    interrupted = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(interrupted) <= 1 and all("interrupted" in t.user_attrs["error"] for t in interrupted)
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


@pytest.mark.slow
def test_two_concurrent_runs_never_run_a_point_twice(data_env):
    spec = write_spec(data_env, "pair", values="[4, 8, 12, 16]")
    first = run_cli(spec)
    time.sleep(2)
    second = run_cli(spec)
    outs = [p.communicate(timeout=400)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    study = load(spec)
    assert len(study.get_trials()) == 4  # no duplicate, no failure
    assert set(complete_counts(study).values()) == {1}


def _claimer(url: str, spec_path: str, name: str, results: list, barrier: str = "", n: int = 1) -> None:
    """A worker that claims and records fake results (claims only, no training).

    With ``barrier``, all ``n`` workers start claiming together (each touches a
    file and waits for the others), so the test really races them.
    """
    spec = load_spec(spec_path)
    study = optuna.load_study(storage=st.open_storage(url), study_name=name)
    owner = st.Owner.me()
    if barrier:
        Path(barrier, f"ready-{os.getpid()}").touch()
        while len(list(Path(barrier).glob("ready-*"))) < n:
            time.sleep(0.05)
    attempted: set = set()
    while (claim := st.claim_next(study, spec, Path("/tmp"), owner, attempted, grace_s=60)) is not None:
        results.append(st.point_key(claim.point))
        time.sleep(0.2)  # "training"
        st.record_result(study, claim.trial, {"status": "ok", "metrics": {"toy": {"mIoU": 1.0}}}, "toy/mIoU")


@pytest.mark.parametrize("storage", ["sqlite", pytest.param("journal", marks=pytest.mark.slow)])
def test_claims_are_exactly_once_across_processes(data_env, storage):
    spec_path = write_spec(data_env, "claims", values="[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]")
    spec = load_spec(spec_path)
    url = st.default_storage_url(st.default_work_root(spec))
    if storage == "journal":  # a journal file on a shared disk: the multi-machine option without a DB server
        url = f"journal:{data_env / 'journal.log'}"
    st.open_study(spec, st.open_storage(url), spec.study)
    barrier = data_env / "barrier"
    barrier.mkdir()
    code = (
        "import sys, json; import ovbench; sys.path.insert(0, 'tests'); from test_sweep_run import _claimer; r=[]; "
        f"_claimer({url!r}, {str(spec_path)!r}, 'claims', r, {str(barrier)!r}, 3); print(json.dumps(r))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    claimed = [json.loads(p.communicate(timeout=200)[0].strip().splitlines()[-1]) for p in procs]
    allk = [k for c in claimed for k in c]
    assert len(allk) == 12 and len(set(allk)) == 12, claimed
    assert sum(1 for c in claimed if c) >= 2  # the work was actually shared


def test_a_wall_clock_step_does_not_make_a_live_worker_look_dead(monkeypatch):
    """Linux reports a process's start as ``btime`` + ticks, and ``btime`` (wall clock minus uptime,
    whole seconds) moves when the clock is slewed or a VM resumes. A live owner must stay alive
    across such a step; a process that merely reuses the pid must not."""
    import dataclasses

    import psutil
    from psutil import _psplatform

    from ovbench.sweep.lock import Owner

    me = Owner.me()
    assert me.alive() is True
    boot = _psplatform.boot_time()
    monkeypatch.setattr(_psplatform, "boot_time", lambda: boot + 1.0)  # the clock stepped by a second
    assert psutil.Process().create_time() != me.started  # what fooled the wall-clock comparison
    assert me.alive() is True
    assert dataclasses.replace(me, since_boot=None).alive() is False  # the old comparison, for the record
    assert dataclasses.replace(me, since_boot=me.since_boot - 30).alive() is False  # a reused pid
    assert dataclasses.replace(me, boot_id="another-boot").alive() is False  # a rebooted host


def test_dead_worker_trial_recovered_from_result_or_failed(data_env):
    spec_path = write_spec(data_env, "recover", values="[1, 2]")
    spec = load_spec(spec_path)
    url = st.default_storage_url(st.default_work_root(spec))
    study = st.open_study(spec, st.open_storage(url), spec.study)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import psutil

    ghost = st.Owner(socket.gethostname(), dead.pid, psutil.Process().create_time(), "ghost")
    attempted: set = set()
    a = st.claim_next(study, spec, data_env / "w", st.Owner.me(), attempted, grace_s=60)
    b = st.claim_next(study, spec, data_env / "w", st.Owner.me(), attempted, grace_s=60)
    assert st.claim_next(study, spec, data_env / "w", st.Owner.me(), attempted, grace_s=60) is None
    for claim in (a, b):  # both workers die: their owner is now a finished process
        storage_of(study).set_trial_system_attr(claim.trial_id, st.OWNER_KEY, ghost.__dict__)
    a.work_dir.mkdir(parents=True)
    (a.work_dir / "result.json").write_text(json.dumps({"status": "ok", "metrics": {"toy": {"mIoU": 7.5}}}))
    settled = dict(st.reconcile(study, spec, grace_s=60))
    assert "COMPLETE" in settled[a.trial.number] and "interrupted" in settled[b.trial.number]
    t = {x.number: x for x in study.get_trials()}
    assert t[a.trial.number].state == TrialState.COMPLETE and t[a.trial.number].value == 7.5
    assert t[b.trial.number].state == TrialState.FAIL
    # the failed point is claimable again, the recovered one is not
    c = st.claim_next(study, spec, data_env / "w", st.Owner.me(), set(), grace_s=60)
    assert c.point == b.point


def test_changed_spec_is_refused_or_run_as_new_study(data_env):
    spec_path = write_spec(data_env, "guard", values="[4, 8]")
    args = argparse.Namespace(ablation=str(spec_path), storage=None, work_dir=None, workers=1, executor=None,
                              rerun=False, new_study=False, heartbeat=1.0, grace=60.0, no_progress=True)
    prepare(args)
    spec_path.write_text(spec_path.read_text().replace("[4, 8]", "[4, 8, 16]"))
    with pytest.raises(st.StudyMismatch, match="changed since study 'guard'"):
        prepare(args)
    args.new_study = True
    spec, opts = prepare(args)
    assert opts.study_name == f"guard-{spec.content_hash}"


def test_random_sampler_claims_n_trials_then_stops(data_env):
    path = data_env / "rnd.yaml"
    path.write_text(SPEC.format(study="rnd", key="optim_wrapper.optimizer.lr", values="{low: 0.001, high: 0.1, log: true}",
                                work=data_env / "work" / "rnd") + "sampler: random\nn_trials: 3\n")
    spec = load_spec(path)
    url = st.default_storage_url(st.default_work_root(spec))
    study = st.open_study(spec, st.open_storage(url), spec.study)
    claims = []
    while (c := st.claim_next(study, spec, data_env, st.Owner.me(), set(), 60)) is not None:
        claims.append(c)
        st.record_result(study, c.trial, {"status": "ok", "metrics": {"toy": {"mIoU": 1.0}}}, "toy/mIoU")
    assert len(claims) == 3
    assert all(0.001 <= c.point["optim_wrapper.optimizer.lr"] <= 0.1 for c in claims)


@pytest.mark.slow
def test_slurm_executor_with_submitit_local_executor(data_env):
    import submitit

    from ovbench.sweep import executor as ex

    spec_path = write_spec(data_env, "slurm", values="[4, 8]")
    args = argparse.Namespace(ablation=str(spec_path), storage=None, work_dir=None, workers=2, executor="slurm",
                              rerun=False, new_study=False, heartbeat=1.0, grace=60.0, no_progress=True)
    spec, opts = prepare(args)
    executor = submitit.LocalExecutor(folder=str(data_env / "submitit"))
    executor.update_parameters(timeout_min=10)
    ran = ex.run_slurm(spec, opts, executor=executor)
    assert sorted(ran) == [0, 1]  # two array jobs shared the two points
    assert set(complete_counts(load(spec_path)).values()) == {1} and len(complete_counts(load(spec_path))) == 2


def test_cli_refuses_invalid_file_and_worker_needs_existing_study(data_env, capsys):
    from ovbench.cli import main

    bad = data_env / "bad.yaml"
    bad.write_text("base_config: configs/smoke/tiny_fcn.py\nspace: {}\ndatasets: [toy]\n")
    assert main(["run", str(bad), "--no-progress"]) == 2
    assert "empty search space" in capsys.readouterr().err
    spec = write_spec(data_env, "lonely", values="[4]")
    assert main(["worker", str(spec), "--no-progress"]) == 2
    assert not (data_env / "work" / "lonely" / "trials").exists()  # nothing ran


def test_lock_left_by_a_killed_process_is_broken_at_once(data_env):
    import psutil

    url = f"sqlite:///{data_env / 'lock.db'}"
    storage = st.open_storage(url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = st.Owner(socket.gethostname(), dead.pid, psutil.Process().create_time(), "ghost")
    sid = storage.create_new_study(st.LOCK_DIRECTIONS, "s.ovbench-lock")
    storage.set_study_user_attr(sid, "acquired_at", time.time())
    storage.set_study_user_attr(sid, "owner", ghost.__dict__)
    start = time.time()
    with st.StorageLock(storage, "s", timeout_s=600):
        pass
    assert time.time() - start < 10  # not the 600 s timeout


def test_train_progress_reads_iteration_and_eta(tmp_path):
    from ovbench.sweep.executor import train_progress

    log = tmp_path / "trial.log"
    assert train_progress(log) is None
    log.write_text("noise\n11/21 - mmengine - INFO - Iter(train) [10/80]  lr: 1e-3  eta: 0:00:16  time: 0.23\n"
                   "11/21 - mmengine - INFO - Iter(train) [20/80]  lr: 1e-3  eta: 0:00:13  time: 0.22\n")
    assert train_progress(log) == "20/80 eta 0:00:13"


def own_host_name_prefix() -> list:
    """``unshare -u`` + a host name that resolves nowhere, where this machine allows a UTS namespace
    (root, as CI); else nothing. torchrun's default rendezvous address is the host's name."""
    prefix = ["unshare", "-u", "sh", "-c", 'hostname ovbench-unresolvable-host && exec "$@"', "sh"]
    if not shutil.which("unshare"):
        return []
    probe = subprocess.run(prefix + ["true"], capture_output=True)  # unshare, hostname and the namespace
    return prefix if probe.returncode == 0 else []


def trial_logs(work: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-6000:]}" for p in sorted(work.rglob("trial.log")))


RANK_THAT_DIES_AT_TEARDOWN = """
import os, sys, time
from pathlib import Path
import torch.distributed as dist
from ovbench.train import end_distributed
dist.init_process_group("gloo")
if dist.get_rank() == 0:
    time.sleep(2)  # rank 0's own work (cost, predictions) outlasts the other rank's
    Path(sys.argv[1]).write_text("rank 0's result")
    end_distributed()
else:
    end_distributed()
    os._exit(1)  # as a gloo rank that aborts in its C++ teardown after its work succeeded
"""


def test_a_rank_that_dies_at_teardown_does_not_cost_rank_0_its_result(tmp_path):
    """torchrun ends every rank once one exits with a failure; ``end_distributed`` keeps the ranks
    together until all are done, so rank 0's result is written first (without the barrier it is not)."""
    from ovbench.sweep.executor import LOOPBACK

    script, result = tmp_path / "ranks.py", tmp_path / "result.txt"
    script.write_text(RANK_THAT_DIES_AT_TEARDOWN)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--local-addr={LOOPBACK}",
           "--nproc-per-node=2", str(script), str(result)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1"))
    assert proc.returncode != 0  # torchrun still reports rank 1's failure
    assert result.exists(), proc.stdout + proc.stderr


def test_torchrun_executor_runs_each_trial_on_two_gloo_processes(data_env):
    """torchrun + mmengine's pytorch launcher on CPU (gloo): the trial trains distributed, rank 0 reports;
    where a UTS namespace is allowed, under a host name that does not resolve (the ranks meet on loopback)."""
    spec_path = write_spec(data_env, "torchrun", values="[4]")
    text = spec_path.read_text().replace("executor: {type: local, workers: 1, timeout_min: 5}",
                                         "executor: {type: torchrun, workers: 1, gpus_per_trial: 2, timeout_min: 5}")
    spec_path.write_text(text)
    prefix = own_host_name_prefix()
    cmd = prefix + [sys.executable, "-m", "ovbench.cli", "run", str(spec_path), "--no-progress", "--heartbeat", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + trial_logs(data_env / "work" / "torchrun")
    study = load(spec_path)
    (trial,) = [t for t in study.trials if t.state == TrialState.COMPLETE]
    work = Path(trial.user_attrs["work_dir"])
    result = json.loads((work / "result.json").read_text())
    assert result["status"] == "ok" and result["cost"]["processes"] == 2, result
    log = (work / "trial.log").read_text()
    assert "Distributed launcher: pytorch" in log and "Distributed training: True" in log


def test_worker_wait_joins_a_study_created_later_or_times_out(data_env, capsys):
    """`ovbench worker --wait` polls until `ovbench run` creates the study, instead of failing at once."""
    from ovbench.cli import main, parse
    from ovbench.sweep.worker import wait_for_study

    spec_path = write_spec(data_env, "late", values="[4]")
    assert main(["worker", str(spec_path), "--wait", "--wait-timeout", "1", "--no-progress"]) == 2
    assert "no study appeared within 1 s" in capsys.readouterr().err
    spec = load_spec(spec_path)
    url = st.default_storage_url(st.default_work_root(spec))
    creator = threading.Timer(1.5, lambda: st.open_study(spec, st.open_storage(url), spec.study))
    start = time.monotonic()
    creator.start()
    assert wait_for_study(parse(["worker", str(spec_path), "--wait", "--wait-timeout", "60"]))
    assert 1.5 <= time.monotonic() - start < 30
    creator.join()


def test_progress_shows_the_study_count_not_this_process(capsys):
    """Another process completed trials meanwhile: the bar jumps to the study's count (and never back)."""
    from ovbench.sweep.executor import Progress

    progress = Progress(done=0, total=4, enabled=True, desc="pair")  # stderr is no tty: plain lines
    progress.finished("trial 0: COMPLETE", done=2)  # this process finished one, the other one too
    progress.finished("trial 3: COMPLETE", done=4)
    progress.finished("trial 5: FAIL", done=3)  # a stale count never moves the bar back
    progress.close()
    err = capsys.readouterr().err
    assert progress.bar.n == 4 and "pair: 4/4 trial" in err, err
