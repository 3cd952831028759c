"""``ovbench data synth --out DIR``: write the embedded benchmark (or ``--cache`` to fill the cache)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ovbench import argtypes

from ovbench.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="DATASET")
    sub.required = True
    p = sub.add_parser("synth", help="generate the synthetic open-vocabulary benchmark")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: the cache, $OVBENCH_CACHE/synth/<key>)")
    p.add_argument("--seed", type=argtypes.seed, default=0)
    p.add_argument("--size", type=argtypes.positive(int), default=64, help="image side in pixels")
    p.add_argument("--scale", type=argtypes.positive(float), default=1.0,
                   help="multiplies every split size (1.0 = 1,900 images); positive")
    p.add_argument("--force", action="store_true", help="regenerate even if a complete copy exists")


def run(args: argparse.Namespace) -> int:
    from ovbench.data.synth.writers import ensure_synth_benchmark, generate_benchmark

    if args.out is None:
        path = ensure_synth_benchmark(seed=args.seed, size=args.size, scale=args.scale, force=args.force)
        print(f"synthetic benchmark ready: {path}")
        return 0
    blocker = next((p for p in (args.out, *args.out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(f"--out {args.out}: {blocker} exists and is not a folder; pass a folder (it is created "
                         "if missing)")
    try:
        m = generate_benchmark(args.out, seed=args.seed, size=args.size, scale=args.scale, verbose=True)
    except OSError as e:  # read-only or full disk
        raise InputError(f"cannot write the benchmark to {args.out}: {e.strerror or e}; choose a writable "
                         "--out") from None
    print(f"wrote {m['images']} images to {args.out} in {m['seconds']} s")
    return 0
