"""The submitting terminal of a ``slurm`` study: progress read from the study, not from ``sacct``.

submitit learns a job's state from ``sacct``, which a cluster without an
accounting database refuses at every call (one warning each, for the whole
run). The study already knows everything the user wants to see, so the
submitting process polls the study for finished trials (one line each, and the
study-wide progress bar) and considers a job over once submitit's result file
exists, or once ``squeue`` no longer lists it (a job killed before writing it).
"""
from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any, List, Set

import optuna
from optuna.trial import FrozenTrial, TrialState

from ovbench.sweep import study as st
from ovbench.sweep.spec import AblationSpec

FINISHED = (TrialState.COMPLETE, TrialState.FAIL)


def job_over(job: Any) -> bool:
    """True once the job wrote its result, or (SLURM) once it is neither pending nor running."""
    if job.paths.result_pickle.exists():
        return True
    if not shutil.which("squeue") or type(job).__name__ != "SlurmJob":
        return bool(job.done())  # e.g. submitit.LocalExecutor's jobs: no sacct involved
    out = subprocess.run(["squeue", "-h", "-j", str(job.job_id), "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and not out.stdout.strip()


def trial_line(spec: AblationSpec, trial: FrozenTrial) -> str:
    """One line per finished trial, as the local executor prints it, plus where it ran."""
    params = " ".join(f"{k.split('.')[-1]}={v}" for k, v in trial.params.items())
    params += f" seed={trial.user_attrs.get('seed')}"
    owner = trial.system_attrs.get(st.OWNER_KEY) or {}
    where = f" on {owner.get('host')} (pid {owner.get('pid')})" if owner else ""
    if trial.state == TrialState.COMPLETE:
        return f"trial {trial.number:>4} {params}: COMPLETE {spec.objective_metric}={trial.value}{where}"
    return f"trial {trial.number:>4} {params}: FAIL {str(trial.user_attrs.get('error', ''))[:200]}{where}"


def watch(jobs: List[Any], spec: AblationSpec, study: optuna.Study, progress: Any, poll_s: float,
          grace_s: float) -> None:
    """Until every job is over: print each newly finished trial and move ``progress`` to the study's count."""
    seen: Set[int] = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
    while True:
        over = all(job_over(job) for job in jobs)
        for t in study.get_trials(deepcopy=False, states=FINISHED):
            if t.number not in seen:
                seen.add(t.number)
                progress.finished(trial_line(spec, t), st.progress_counts(study, spec, grace_s)[0])
        if over:
            return
        time.sleep(poll_s)
