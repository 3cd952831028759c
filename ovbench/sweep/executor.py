"""Executors: who runs the claimed trials. ``local`` (N worker threads, each trial a subprocess),
``slurm`` (submitit job array of workers that claim from the same study), ``torchrun`` (local workers
whose trials are multi-process: ``torch.distributed.run`` + mmengine's ``pytorch`` launcher).

Every worker runs the same loop (:func:`worker_loop`): claim a point from the
study, start ``python -m ovbench.sweep.trial`` in its own process with its own
work dir and log, refresh the trial's heartbeat while it runs, record the
result. A failed trial is recorded and the loop goes on.
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

import optuna
from optuna.trial import TrialState

from ovbench.sweep import preflight
from ovbench.sweep import study as st
from ovbench.sweep.curves import LossCurve
from ovbench.sweep.spec import AblationSpec


@dataclass
class RunOptions:
    """Knobs shared by every executor (CLI flags)."""

    storage_url: str
    study_name: str
    work_root: Path
    workers: int = 1
    heartbeat_s: float = 10.0
    grace_s: float = 60.0
    timeout_s: float = 7200.0
    progress: bool = True
    threads_per_trial: int = 1
    extra_env: Dict[str, str] = field(default_factory=dict)
    procs_per_trial: int = 1  # > 1: the trial is started through torch.distributed.run (torchrun)


LOOPBACK = "127.0.0.1"


def trial_command(opts: RunOptions) -> List[str]:
    """The command that starts one trial process (or, under torchrun, one per GPU)."""
    if opts.procs_per_trial > 1:
        # --standalone: a private rendezvous on a free local port, so parallel trials never collide;
        # --local-addr: the ranks meet on loopback, not at whatever this machine's name resolves to
        # (torchrun's default, which hangs where the host name does not resolve)
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--local-addr={LOOPBACK}",
                f"--nproc-per-node={opts.procs_per_trial}", "-m", "ovbench.sweep.trial"]
    return [sys.executable, "-m", "ovbench.sweep.trial"]


def worker_env(opts: RunOptions, worker_index: int) -> Dict[str, str]:
    """The environment of one worker's trials: its thread count and, for multi-GPU trials on a
    CUDA machine, its own block of ``procs_per_trial`` GPUs (worker k gets GPUs kG .. kG+G-1)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(opts.threads_per_trial), **opts.extra_env)
    if opts.procs_per_trial > 1:
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo's pairs on loopback too
    if opts.procs_per_trial > 1 and "CUDA_VISIBLE_DEVICES" not in opts.extra_env:
        import torch

        if torch.cuda.is_available():
            g = opts.procs_per_trial
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(worker_index * g + i) for i in range(g))
    return env


def default_workers(spec: AblationSpec, workers: Optional[int] = None) -> int:
    """``workers`` (``--workers``), else the spec's worker count; 0 in either = the machine's cores (one
    thread each)."""
    chosen = spec.executor.workers if workers is None else workers
    return chosen or max(1, os.cpu_count() or 1)


def prepare_datasets(spec: AblationSpec) -> Dict[str, str]:
    """Check (and generate once, before any trial starts) every dataset the spec's trials read."""
    from ovbench.data.roots import data_root

    return preflight.check_study_data(spec, data_root())


def _die_with_parent() -> None:
    """preexec: the trial process gets SIGKILL when its worker dies, so no orphan keeps training."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def trial_request(spec: AblationSpec, claim: st.Claim, roots: Dict[str, str]) -> Dict[str, Any]:
    params = spec.config_params(claim.point)
    return {
        "study": spec.study, "trial_number": claim.trial.number, "base_config": str(spec.base_config_path()),
        "params": params, "seed": claim.point["seed"], "overrides": spec.overrides,
        "datasets": {n: roots[n] for n in spec.datasets},
        "work_dir": str(claim.work_dir),
    }


_ITER_RE = re.compile(rb"Iter\(train\) \[\s*(\d+)/(\d+)\](?:.*?eta: ([0-9:]+))?")


def train_progress(log: Path) -> Optional[str]:
    """``'40/80 eta 0:00:09'``: the last training iteration (and mmengine's ETA) in the log's tail."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, log.stat().st_size - 8192))
            hits = _ITER_RE.findall(fh.read())
    except OSError:
        return None
    if not hits:
        return None
    done, total, eta = hits[-1]
    return f"{int(done)}/{int(total)}" + (f" eta {eta.decode()}" if eta else "")


def run_subprocess(req: Dict[str, Any], opts: RunOptions, beat: Callable[[], None],
                   on_progress: Optional[Callable[[str], None]] = None, worker_index: int = 0) -> Dict[str, Any]:
    """Run one trial process, heart-beating while it lives; its result (or why it has none)."""
    from ovbench.sweep.trial import log_tail, write_json

    work_dir = Path(req["work_dir"])
    log = work_dir / "trial.log"
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "result.json").unlink(missing_ok=True)
        write_json(work_dir / "request.json", req)
        fh = open(log, "wb")
    except OSError as e:  # a full or read-only disk fails this trial (recorded), not the worker thread
        return {"status": "failed", "error": f"cannot prepare the trial directory {work_dir}: {e.strerror or e}",
                "work_dir": str(work_dir)}
    env = worker_env(opts, worker_index)
    with fh:
        try:
            proc = subprocess.Popen(trial_command(opts) + [str(work_dir / "request.json")],
                                    stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        except OSError as e:
            return {"status": "failed", "error": f"cannot start the trial process: {e}", "work_dir": str(work_dir)}
        deadline = time.time() + opts.timeout_s
        while proc.poll() is None:
            if time.time() > deadline:
                proc.kill()
                proc.wait()
                return {"status": "failed", "error": f"timeout after {opts.timeout_s:.0f} s",
                        "log_tail": log_tail(log), "work_dir": str(work_dir)}
            try:
                beat()
            except Exception:  # a busy storage must not kill the trial; the next beat retries
                pass
            if on_progress is not None:
                on_progress(train_progress(log) or "starting")
            try:
                proc.wait(timeout=opts.heartbeat_s)
            except subprocess.TimeoutExpired:
                pass
    result = st.read_result(str(work_dir))
    if result is None:
        code = proc.returncode
        why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        result = {"status": "failed", "error": f"trial process {why} without a result (crash or OOM?); see {log}",
                  "work_dir": str(work_dir)}
    if result.get("status") != "ok":
        result["log_tail"] = log_tail(log)
    return result


class Progress:
    """A sweep bar with ETA plus one line per finished trial (tqdm on a terminal, plain periodic
    lines in a log: :func:`ovbench.progress.progress_bar`); only the trial lines when disabled."""

    def __init__(self, done: int, total: int, enabled: bool, desc: str):
        self.lock = threading.Lock()
        self.running: Dict[int, str] = {}
        self.bar = None
        if enabled:
            from ovbench.progress import progress_bar

            self.bar = progress_bar(total, desc, unit="trial", initial=done, file=sys.stderr)

    def trial(self, number: int, text: Optional[str]) -> None:
        """Per-trial progress (iterations done) shown beside the sweep bar; None removes it."""
        with self.lock:
            if text is None:
                self.running.pop(number, None)
            else:
                self.running[number] = text
            if self.bar is not None:
                self.bar.set_postfix_str(" ".join(f"t{n}:{t}" for n, t in sorted(self.running.items())))

    def finished(self, line: str, done: int) -> None:
        """Print a trial's line; the bar shows ``done``, the study's count (other processes' trials too)."""
        with self.lock:
            if self.bar is None:
                print(line, flush=True)
                return
            self.bar.write(line)
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_line(spec: AblationSpec, claim: st.Claim, result: Dict[str, Any], state: TrialState) -> str:
    params = " ".join(f"{k.split('.')[-1]}={v}" for k, v in claim.point.items())
    if state == TrialState.COMPLETE:
        flat = st.flat_metrics(result)
        cost = result.get("cost", {})
        return (f"trial {claim.trial.number:>4} {params}: COMPLETE {spec.objective_metric}="
                f"{flat.get(spec.objective_metric)} ({cost.get('wall_time_s', 0):.1f} s)")
    return f"trial {claim.trial.number:>4} {params}: FAIL {result.get('error', '')[:200]}"


def worker_loop(spec: AblationSpec, opts: RunOptions, roots: Dict[str, str], progress: Progress,
                attempted: Set[str], owner: st.Owner, worker_index: int = 0) -> List[int]:
    """Claim -> run -> record until nothing is claimable; returns the trial numbers it ran."""
    storage = st.open_storage(opts.storage_url)
    study = optuna.load_study(storage=storage, study_name=opts.study_name)
    ran: List[int] = []
    while True:
        claim = st.claim_next(study, spec, opts.work_root, owner, attempted, opts.grace_s)
        if claim is None:
            return ran
        tid = claim.trial_id
        number = claim.trial.number
        curve = LossCurve(storage, tid, Path(claim.work_dir) / "trial.log")

        def beat() -> None:
            st.heartbeat(storage, tid)
            curve.report()

        result = run_subprocess(trial_request(spec, claim, roots), opts, beat,
                                lambda text: progress.trial(number, text), worker_index)
        try:
            curve.report()  # the losses logged since the last heartbeat, while the trial is still RUNNING
        except Exception:  # a learning curve is an extra: never lose the result for it
            pass
        progress.trial(number, None)
        state, result = st.record_result(study, claim.trial, result, spec.objective_metric)
        progress.finished(summary_line(spec, claim, result, state), st.progress_counts(study, spec, opts.grace_s)[0])
        ran.append(claim.trial.number)


def run_local(spec: AblationSpec, opts: RunOptions) -> List[int]:
    """``local`` executor: ``opts.workers`` threads in this process, each running trials as subprocesses."""
    from ovbench.data.synth.writers import benchmark_version

    roots = prepare_datasets(spec)
    study = optuna.load_study(storage=st.open_storage(opts.storage_url), study_name=opts.study_name)
    st.check_benchmark(study, benchmark_version(roots))
    done, total = st.progress_counts(study, spec, opts.grace_s)
    progress = Progress(done, total, opts.progress, spec.study)
    attempted: Set[str] = set()  # shared: a point failed in this run is not retried by a sibling thread
    owner = st.Owner.me()
    ran: List[int] = []
    errors: List[BaseException] = []

    def target(index: int) -> None:
        try:
            ran.extend(worker_loop(spec, opts, roots, progress, attempted, owner, index))
        except BaseException as e:  # surfaced after join; other workers carry on
            errors.append(e)

    n = max(1, min(opts.workers, total - done))  # no more workers than points left to run
    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.2)  # stagger the first claims
    for t in threads:
        t.join()
    progress.close()
    if errors:
        raise errors[0]
    return ran


def _slurm_worker(spec: AblationSpec, opts: RunOptions) -> List[int]:
    """Body of one submitit job: a single-worker local loop on the shared study (the spec travels
    pickled, so the job runs the scale the run was started at)."""
    return run_local(spec, RunOptions(**{**opts.__dict__, "workers": 1, "progress": False}))


def run_slurm(spec: AblationSpec, opts: RunOptions, executor: Any = None) -> List[int]:
    """``slurm`` executor: a submitit job array of ``opts.workers`` workers claiming from the study.

    The storage must be reachable from the nodes (shared-disk SQLite/journal, or
    PostgreSQL). ``executor`` may be any submitit executor (tests pass
    ``submitit.LocalExecutor``); by default ``submitit.AutoExecutor`` with the
    spec's ``executor.slurm`` parameters.
    """
    import submitit

    if executor is None:
        executor = submitit.AutoExecutor(folder=str(opts.work_root / "submitit"))
        params = dict(timeout_min=int(spec.executor.timeout_min), slurm_array_parallelism=opts.workers)
        if spec.executor.gpus_per_trial:
            params["gpus_per_node"] = spec.executor.gpus_per_trial
        params.update(spec.executor.slurm)
        executor.update_parameters(**params)
    from ovbench.data.synth.writers import benchmark_version

    roots = prepare_datasets(spec)
    st.check_benchmark(optuna.load_study(storage=st.open_storage(opts.storage_url), study_name=opts.study_name),
                       benchmark_version(roots))
    jobs = executor.map_array(_slurm_worker, [spec] * max(1, opts.workers), [opts] * max(1, opts.workers))
    from ovbench.sweep import slurm_watch

    study = optuna.load_study(storage=st.open_storage(opts.storage_url), study_name=opts.study_name)
    progress = Progress(*st.progress_counts(study, spec, opts.grace_s), opts.progress, spec.study)
    slurm_watch.watch(jobs, spec, study, progress, opts.heartbeat_s, opts.grace_s)  # no sacct polling
    progress.close()
    ran: List[int] = []
    for job in jobs:
        ran.extend(job.result())
    return ran


def run_torchrun(spec: AblationSpec, opts: RunOptions) -> List[int]:
    """``torchrun`` executor: local workers whose trials each run on ``gpus_per_trial`` processes.

    Each trial is ``python -m torch.distributed.run --standalone --nproc-per-node=G -m
    ovbench.sweep.trial``; the trial sees torchrun's ``WORLD_SIZE`` and trains with mmengine's
    ``pytorch`` launcher (NCCL on GPUs, gloo on a CPU-only machine), rank 0 writing the result.
    Worker k gets GPUs ``kG .. kG+G-1``, so the default worker count is ``#GPUs // G``.
    """
    import torch

    g = max(1, int(spec.executor.gpus_per_trial or 1))
    workers, threads = opts.workers, opts.threads_per_trial
    if torch.cuda.is_available():
        workers = workers if spec.executor.workers else max(1, torch.cuda.device_count() // g)
    else:  # CPU-only (gloo): the trial's G processes share the worker's cores
        workers = workers if spec.executor.workers else max(1, workers // g)
        threads = max(1, threads // g)
    return run_local(spec, RunOptions(**{**opts.__dict__, "procs_per_trial": g, "workers": workers,
                                         "threads_per_trial": threads}))


EXECUTORS = {"local": run_local, "slurm": run_slurm, "torchrun": run_torchrun}


def run_spec(spec: AblationSpec, opts: RunOptions) -> List[int]:
    return EXECUTORS[spec.executor.type](spec, opts)

