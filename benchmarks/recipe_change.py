"""What a recipe change does to every setting of a study: two studies with the same settings, paired by seed.

    python benchmarks/recipe_change.py ablations/peft_methods.yaml ablations/recipe_v3.yaml
    python benchmarks/recipe_change.py A.yaml B.yaml --metric synth_large/mIoU --reports reports

A recipe probe (issue 20) asks whether a candidate recipe helps every method, not one. Running the old
recipe's rows again in the new study would double its cost, and on one machine line a seed's trial
reproduces exactly across studies (every probe's reference row has), so this script pairs the new
study's trials with the old study's committed ones instead: the same setting label (the same swept
keys and values) and the same seed. Per setting it prints both means, the paired difference new - old
(mean ± 95% CI, paired t, p Holm-corrected across settings) and both seed sds with the F interval of
their ratio (:func:`ovbench.report.stats.sd_ratio`).

It reads ``reports/<study>/trials.csv`` of both (no training) and refuses to pair trials whose machine
lines differ: a seed on another processor or thread count is another model (docs/sweeps.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(file: str, reports: str, metric: str | None):
    import pandas as pd

    from ovbench.report import stats
    from ovbench.report.tables import trial_labels
    from ovbench.sweep.spec import load_spec

    spec = load_spec(file, check_config=False)
    csv = Path(reports) / spec.study / "trials.csv"
    if not csv.is_file():
        sys.exit(f"error: {csv}: no trials.csv for study '{spec.study}' of {file}; run and report it first")
    df = pd.read_csv(csv)
    metric = metric or spec.objective_metric
    values = {k: v.get(metric, {}) for k, v in
              stats.per_seed(df, trial_labels(df, list(spec.space)), [metric]).items()}
    devices = sorted({str(d) for d in df.get("device", []) if isinstance(d, str) and d})
    return spec, metric, values, devices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="ablation file of the study on the old recipe")
    parser.add_argument("new", help="ablation file of the study on the new recipe (the same settings)")
    parser.add_argument("--metric", default=None, help="default: the new study's objective")
    parser.add_argument("--reports", default="reports", help="folder of the committed reports")
    parser.add_argument("--allow-devices", action="store_true",
                        help="pair trials even when the two studies' machine lines differ (the pairing is then "
                             "confounded with the machine)")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from ovbench.report import stats

    new_spec, metric, new, new_dev = load(args.new, args.reports, args.metric)
    old_spec, _, old, old_dev = load(args.old, args.reports, metric)
    if old_dev != new_dev and not args.allow_devices:
        sys.exit(f"error: the studies ran on different machine lines ({old_spec.study}: {old_dev}; "
                 f"{new_spec.study}: {new_dev}); a seed is not the same model on both. --allow-devices pairs "
                 "them anyway")
    labels = [label for label in new if label in old]
    if not labels:
        sys.exit(f"error: no setting of {new_spec.study} ({', '.join(new) or 'none'}) is also in "
                 f"{old_spec.study} ({', '.join(old) or 'none'})")
    diffs = [stats.paired_difference(new[label], old[label]) for label in labels]
    adjusted = stats.holm([d.p for d in diffs])
    print(f"{metric}: {new_spec.study} (new) - {old_spec.study} (old), paired by seed; p Holm-corrected over "
          f"{len(labels)} setting(s); machine line(s) {', '.join(new_dev) or '-'}\n")
    print("| setting | seeds | old | new | new - old | p (Holm) | seed sd old / new | sd ratio new/old [95% CI] |\n"
          "|---|---|---|---|---|---|---|---|")
    for label, d, p in zip(labels, diffs, adjusted):
        seeds = sorted(set(new[label]) & set(old[label]))
        a, b = [old[label][s] for s in seeds], [new[label][s] for s in seeds]
        o, n = stats.mean_ci(a), stats.mean_ci(b)
        sd_o = statistics.stdev(a) if len(a) > 1 else float("nan")
        sd_n = statistics.stdev(b) if len(b) > 1 else float("nan")
        r = stats.sd_ratio(b, a)
        print(f"| {label} | {len(seeds)} | {stats.fmt_pm(o.mean, o.half_width)} | {stats.fmt_pm(n.mean, n.half_width)} | "
              f"{stats.fmt_pm(d.mean, d.half_width)} | {stats.fmt_p(p)} | {sd_o:.2f} / {sd_n:.2f} | "
              f"{r.ratio:.2f} [{r.low:.2f}, {r.high:.2f}] |")
    missing = [label for label in new if label not in old]
    if missing:
        print(f"\nnot in {old_spec.study}, not compared: {', '.join(missing)}")


if __name__ == "__main__":
    main()
