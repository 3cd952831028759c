"""``ovbench worker FILE --storage URL``: join a study another ``ovbench run`` created (e.g. on another machine).

Same loop as ``ovbench run`` (claims are exactly-once through the storage), but
it never creates the study: a worker pointed at the wrong storage fails loudly.
"""
from __future__ import annotations

import argparse
import sys
import time

from ovbench.sweep import run as _run

POLL_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _run.add_arguments(parser)
    parser.add_argument("--wait", action="store_true",
                        help="wait until `ovbench run` has created the study instead of failing at once "
                             "(start workers and the run together)")
    parser.add_argument("--wait-timeout", type=float, default=600.0,
                        help="seconds --wait waits for the study (default: %(default)s)")


def wait_for_study(args: argparse.Namespace) -> bool:
    """Poll the storage until the file's study exists; False after ``--wait-timeout`` seconds."""
    from ovbench.sweep import study as st

    spec = _run.load(args)  # at the --scale the run was started with
    _, url = _run.storage_of(args, spec)
    name = st.study_name_for(spec, args.new_study)
    deadline = time.monotonic() + args.wait_timeout
    print(f"waiting for study {name} in {st.display_url(url)} (up to {args.wait_timeout:.0f} s)", flush=True)
    while True:
        try:  # create=False: the run creates the storage, a worker never does (not even a SQLite file)
            st.open_storage(url, create=False).get_study_id_from_name(name)
            return True
        except (KeyError, st.StorageError):
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)


def run(args: argparse.Namespace) -> int:
    from ovbench.sweep.spec import SpecError

    try:
        if args.wait and not wait_for_study(args):
            print(f"error: no study appeared within {args.wait_timeout:.0f} s; start it with `ovbench run "
                  f"{args.ablation}` (same --storage)", file=sys.stderr)
            return 2
    except SpecError as e:  # a bad file; a storage that cannot be opened keeps being waited for
        print(f"error: {e}", file=sys.stderr)
        return 2
    return _run.run(args, create=False)  # a missing storage or study is a StorageError: exit 2
