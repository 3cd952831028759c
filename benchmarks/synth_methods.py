"""The method table on the embedded benchmark: train each configs/synth method once (one seed)
and evaluate it on every synthetic evaluation set; zero-shot MaskCLIP is evaluated untrained.

    python benchmarks/synth_methods.py [--methods hclip full ...] [--jobs 2] [--out reports/synth_methods]

Each run uses one torch thread and --jobs runs go in parallel (2 cores: 2 jobs), so
per-run wall times are comparable between methods of the same invocation.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["frozen", "full", "lora", "catseg", "hclip", "oft", "vpt"]


def _run(cmd, log: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def one(method: str, out: Path, seed: int) -> dict:
    exe = [sys.executable, "-m", "ovbench.cli"]
    work = out / "work" / method
    work.mkdir(parents=True, exist_ok=True)
    config = f"configs/synth/{'zeroshot_maskclip' if method == 'zeroshot' else method}.py"
    train_s = 0.0
    ckpt = []
    if method != "zeroshot":
        train_s = _run(exe + ["train", config, "--work-dir", str(work), "--seed", str(seed),
                              "--cfg-options", "train_cfg.val_interval=100000"], work / "train.log")
        ckpt = [str(sorted(work.glob("iter_*.pth"))[-1])]
    _run(exe + ["test", config, *ckpt, "--work-dir", str(work / "test")], work / "test.log")
    metrics = json.loads((work / "test" / "eval_results.json").read_text())
    return dict(method=method, train_s=round(train_s, 1), metrics=metrics)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["zeroshot"] + METHODS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "reports" / "synth_methods"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda m: one(m, out, args.seed), args.methods))
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    sets = list(rows[0]["metrics"])
    lines = ["| method | train s | " + " | ".join(f"{s} mIoU / unseen" for s in sets) + " |",
             "|---|---|" + "---|" * len(sets)]
    for r in rows:
        cells = [f"{r['metrics'][s]['mIoU']:.2f} / {r['metrics'][s].get('mIoU_unseen', float('nan')):.2f}" for s in sets]
        lines.append(f"| {r['method']} | {r['train_s']:.0f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (out / "table.md").write_text(f"Embedded benchmark, seed {args.seed}, one run per method "
                                  f"(benchmarks/synth_methods.py).\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
