"""``ovbench run FILE``: run (or resume) an ablation study; ``ovbench worker FILE``: join one.

Re-running the same command skips completed trials and re-runs failed or
interrupted ones; ``--rerun`` runs every point again (older trials stay as
history). A changed ablation file is refused (``--new-study`` runs it as a new
study instead). ``--scale real`` runs the file's ``real_config`` (study ``<study>-real``) on the
datasets under ``--data-root`` (docs/real_data.md); every dataset the trials read is checked
before the storage is created. ``--dry-run`` prints the plan and creates nothing. Exit code:
0 when every point completed (or is still running in another worker), 1 when some point
failed, 2 on an invalid file, a missing dataset or a refused study.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ovbench import argtypes
from ovbench.data.roots import DATA_ROOT_ENV, data_root
from ovbench.errors import InputError
from ovbench.sweep import executor as ex
from ovbench.sweep import preflight
from ovbench.sweep import study as st
from ovbench.sweep.spec import MAX_WORKERS, SCALES, AblationSpec, load_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ablation", help="ablation file (ablations/*.yaml)")
    parser.add_argument("--storage", help="optuna storage URL (default: sqlite under the work dir; "
                        "postgresql://... for many machines; journal:PATH for a journal file on shared disk)")
    parser.add_argument("--work-dir", help="sweep work dir (default: the file's work_dir or work_dirs/sweeps/<study>)")
    parser.add_argument("--workers", type=argtypes.int_in_range(0, MAX_WORKERS, "0 = the machine's cores"),
                        help=f"parallel trials, 0..{MAX_WORKERS}; 0 = the machine's cores, as in "
                        "the file (default: the file's, else the cores; never more than the study has points)")
    parser.add_argument("--executor", choices=sorted(ex.EXECUTORS), help="override the file's executor")
    parser.add_argument("--rerun", action="store_true", help="run every point again, even completed ones")
    parser.add_argument("--new-study", action="store_true", help="if the file changed, run it as a new study")
    parser.add_argument("--heartbeat", type=argtypes.positive(float, "seconds"), default=10.0,
                        help="seconds between trial heartbeats")
    parser.add_argument("--grace", type=argtypes.positive(float, "seconds"), default=60.0,
                        help="a RUNNING trial with no heartbeat for this long (other hosts) is stale")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per trial only)")
    parser.add_argument("--scale", choices=SCALES, default="embedded",
                        help="embedded: the file's base_config; real: its real_config and real: keys, as study "
                             "<study>-real (default: %(default)s)")
    parser.add_argument("--data-root", help=f"where the datasets are: a config's data/<folder> becomes DIR/<folder> "
                        f"(default: ${DATA_ROOT_ENV}, else ./data; docs/datasets.md)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the trials, config, datasets, executor and iterations; run and create nothing")


def storage_of(args: argparse.Namespace, spec: AblationSpec) -> Tuple[Path, str]:
    """(work root, storage URL): the flags, else the file's, else SQLite under the work dir."""
    work_root = Path(args.work_dir).resolve() if args.work_dir else st.default_work_root(spec)
    return work_root, args.storage or spec.storage or st.default_storage_url(work_root)


def load(args: argparse.Namespace) -> AblationSpec:
    """The validated file at the chosen ``--scale``, with ``--executor`` applied."""
    spec = load_spec(args.ablation, scale=getattr(args, "scale", "embedded"))
    if args.executor:
        spec.executor = type(spec.executor)(**{**spec.executor.__dict__, "type": args.executor})
    return spec


def prepare(args: argparse.Namespace, create: bool = True,
            spec: Optional[AblationSpec] = None) -> Tuple[AblationSpec, ex.RunOptions]:
    """Validate the file (unless given), open/create the study (hash-guarded) and build the run options."""
    spec = spec or load(args)
    work_root, url = storage_of(args, spec)
    storage = st.open_storage(url, create=create)
    name = st.study_name_for(spec, args.new_study)
    study = st.open_study(spec, storage, name, create=create)
    if getattr(args, "rerun", False):
        st.mark_rerun(study)
    workers = planned_workers(args, spec)
    threads = max(1, (os.cpu_count() or 1) // workers)
    opts = ex.RunOptions(storage_url=url, study_name=name, work_root=work_root, workers=workers,
                         heartbeat_s=args.heartbeat, grace_s=args.grace,
                         timeout_s=spec.executor.timeout_min * 60, progress=not args.no_progress,
                         threads_per_trial=threads)
    return spec, opts


def planned_workers(args: argparse.Namespace, spec: AblationSpec) -> int:
    """``--workers``, else the file's, else the cores (``0`` in either means the cores); never more than
    the study has points."""
    return min(ex.default_workers(spec, args.workers), max(1, spec.n_points()))


def summarize(spec: AblationSpec, opts: ex.RunOptions, elapsed: float, ran: Optional[List[int]] = None) -> int:
    """Print where the study stands (all processes) and which trials this command ran; 0 when every
    point is complete or still running in another worker."""
    import optuna

    study = optuna.load_study(storage=st.open_storage(opts.storage_url), study_name=opts.study_name)
    done, total = st.progress_counts(study, spec, opts.grace_s)
    busy = len(st.grid_status(study, spec, opts.grace_s)[1]) if spec.sampler == "grid" else 0
    failed = sum(1 for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL")
    elsewhere = f", {busy} still running in other workers" if busy else ""
    print(f"study {opts.study_name}: {done}/{total} complete{elsewhere}, {failed} failed trial(s) recorded, "
          f"{elapsed:.1f} s; storage {st.display_url(opts.storage_url)}")
    if ran is not None:
        mine = ", ".join(str(n) for n in sorted(ran)) or "none"
        print(f"this command (pid {os.getpid()} on {socket.gethostname()}) ran trial(s): {mine}")
    return 0 if done + busy >= total else 1


def run(args: argparse.Namespace, create: bool = True) -> int:
    start = time.time()
    try:
        spec = load(args)
        root = data_root(getattr(args, "data_root", None))
        if getattr(args, "data_root", None):
            os.environ[DATA_ROOT_ENV] = str(root)  # trials (subprocesses, SLURM jobs) inherit the data root
        preflight.check_points_build(spec)  # a point that cannot build its model fails here, not per trial
        if getattr(args, "dry_run", False):
            print("\n".join(preflight.plan_lines(spec, root, spec.executor.type, planned_workers(args, spec))))
            return 0
        preflight.check_study_data(spec, root)  # before the storage exists: a missing set creates nothing
        spec, opts = prepare(args, create=create, spec=spec)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ran = ex.run_spec(spec, opts)
    return summarize(spec, opts, time.time() - start, ran)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="ovbench run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
