"""What a recipe change does to every setting of a study: two studies with the same settings, paired by seed.

    python benchmarks/recipe_change.py ablations/peft_methods.yaml ablations/recipe_v3.yaml
    python benchmarks/recipe_change.py A.yaml B.yaml --metric synth_large/mIoU --reports reports
    python benchmarks/recipe_change.py ablations/block_size.yaml ablations/block_size.yaml --old-reports reports/v2

A recipe probe (issue 20) asks whether a candidate recipe helps every method, not one. Running the old
recipe's rows again in the new study would double its cost, and on one machine line a seed's trial
reproduces exactly across studies (every probe's reference row has), so this script pairs the new
study's trials with the old study's committed ones instead: the same setting (the same swept keys and
values) and the same seed. Per setting it prints both means, the paired difference new - old (mean ±
95% CI, paired t, p Holm-corrected across settings) and both seed sds with the F interval of their
ratio (:func:`ovbench.report.stats.sd_ratio`).

It reads ``reports/<study>/trials.csv`` of both (no training). A seed on another processor or thread
count is another model (docs/sweeps.md), so it refuses two studies whose recorded machine lines differ
(``--allow-devices`` pairs them anyway). Trials from before the machine line named the processor
(``cpu (x86_64, 2 cores)``) cannot be checked: it says so and pairs them.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
# The machine line before ovbench/machine.py: no processor model, no thread count.
UNRECORDED = re.compile(r"^cpu \([^,()]+, \d+ cores\)$")

Values = Dict[str, Dict[int, float]]


def paired_values(old, new, keys: Sequence[str], metric: str) -> Tuple[Values, Values]:
    """``{setting label: {seed: metric}}`` of each study's COMPLETE trials. The labels are made from both
    frames at once, so one value prints alike in both (a study sweeping only whole numbers would
    otherwise print ``5`` where the other prints ``5.0``)."""
    import pandas as pd

    from ovbench.report import stats
    from ovbench.report.tables import trial_labels

    for name, df in (("old", old), ("new", new)):
        missing = [c for c in (*keys, metric, "seed", "state") if c not in df.columns]
        if missing:
            raise ValueError(f"the {name} study's trials.csv has no column(s) {', '.join(missing)}")
    both = pd.concat([old, new], ignore_index=True)
    labels = trial_labels(both, list(keys))
    split = len(old)

    def values(df, lab) -> Values:
        return {k: v.get(metric, {}) for k, v in stats.per_seed(df, lab, [metric]).items()}

    return values(old, labels[:split]), values(new, labels[split:])


def device_problem(old_lines: Sequence[str], new_lines: Sequence[str]) -> Tuple[str, str]:
    """(error, warning): an error when both studies name their machines and the names differ; a warning
    when either has trials whose line does not name the processor."""
    unknown = [s for s in (*old_lines, *new_lines) if UNRECORDED.match(s)]
    if unknown:
        return "", (f"machine line(s) {', '.join(sorted(set(unknown)))} do not name the processor: "
                    "pairing assumes the trials ran on the same machine and thread count")
    if list(old_lines) != list(new_lines):
        return (f"the studies ran on different machine lines (old: {', '.join(old_lines) or '-'}; new: "
                f"{', '.join(new_lines) or '-'}); a seed is not the same model on both"), ""
    return "", ""


def rows(old: Values, new: Values) -> List[Dict[str, object]]:
    """One row per setting in both studies with at least one common seed."""
    from ovbench.report import stats

    labels = [label for label in new if label in old and set(new[label]) & set(old[label])]
    diffs = [stats.paired_difference(new[label], old[label]) for label in labels]
    out = []
    for label, d, p in zip(labels, diffs, stats.holm([d.p for d in diffs])):
        seeds = sorted(set(new[label]) & set(old[label]))
        a, b = [old[label][s] for s in seeds], [new[label][s] for s in seeds]
        out.append({"setting": label, "seeds": seeds, "old": stats.mean_ci(a), "new": stats.mean_ci(b),
                    "diff": d, "p_holm": p, "sd_old": statistics.stdev(a) if len(a) > 1 else math.nan,
                    "sd_new": statistics.stdev(b) if len(b) > 1 else math.nan, "ratio": stats.sd_ratio(b, a)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="ablation file of the study on the old recipe")
    parser.add_argument("new", help="ablation file of the study on the new recipe (the same swept keys)")
    parser.add_argument("--metric", default=None, help="default: the new study's objective")
    parser.add_argument("--reports", default="reports", help="folder of the committed reports")
    parser.add_argument("--old-reports", default=None,
                        help="folder of the old study's report, if not --reports (a study re-run on a new benchmark "
                             "version, its old report moved to e.g. reports/v2)")
    parser.add_argument("--allow-devices", action="store_true",
                        help="pair trials even when the two studies' machine lines differ (the pairing is then "
                             "confounded with the machine)")
    args = parser.parse_args()
    files = [str(Path(f).resolve()) for f in (args.old, args.new)]
    def folder(name: str) -> Path:
        return Path(name).resolve() if Path(name).exists() else ROOT / name

    reports, old_reports = folder(args.reports), folder(args.old_reports or args.reports)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from ovbench.report import stats
    from ovbench.report.frame import distinct_values
    from ovbench.sweep.spec import load_spec

    old_spec, new_spec = (load_spec(f, check_config=False) for f in files)
    if list(old_spec.space) != list(new_spec.space):
        sys.exit(f"error: {args.new} sweeps {', '.join(new_spec.space)} but {args.old} sweeps "
                 f"{', '.join(old_spec.space)}; settings can only be paired over the same keys")
    frames = []
    for spec, file, root in ((old_spec, args.old, old_reports), (new_spec, args.new, reports)):
        csv = root / spec.study / "trials.csv"
        if not csv.is_file():
            sys.exit(f"error: {csv}: no trials.csv for study '{spec.study}' of {file}; run and report it first")
        frames.append(pd.read_csv(csv))
    metric = args.metric or new_spec.objective_metric
    try:
        old, new = paired_values(*frames, list(new_spec.space), metric)
    except ValueError as e:
        sys.exit(f"error: {e} (--metric {metric})")
    lines = [distinct_values(df, "device") for df in frames]
    error, warning = device_problem(*lines)
    if error and not args.allow_devices:
        sys.exit(f"error: {error}. --allow-devices pairs them anyway")
    table = rows(old, new)
    if not table:
        sys.exit(f"error: no setting of {new_spec.study} ({', '.join(new) or 'none'}) has a seed in common with "
                 f"{old_spec.study} ({', '.join(old) or 'none'}) on {metric}")
    print(f"{metric}: {new_spec.study} (new) - {old_spec.study} (old), paired by seed; p Holm-corrected over "
          f"{len(table)} setting(s)")
    print(f"machine lines: old {', '.join(lines[0]) or '-'}; new {', '.join(lines[1]) or '-'}")
    for note in (warning, error and f"{error} (paired anyway: --allow-devices)"):
        if note:
            print(f"warning: {note}")
    print("\n| setting | seeds | old | new | new - old | p (Holm) | seed sd old / new | sd ratio new/old [95% CI] |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in table:
        o, n, d, q = r["old"], r["new"], r["diff"], r["ratio"]
        print(f"| {r['setting']} | {len(r['seeds'])} | {stats.fmt_pm(o.mean, o.half_width)} | "
              f"{stats.fmt_pm(n.mean, n.half_width)} | {stats.fmt_pm(d.mean, d.half_width)} | "
              f"{stats.fmt_p(r['p_holm'])} | {r['sd_old']:.2f} / {r['sd_new']:.2f} | "
              f"{q.ratio:.2f} [{q.low:.2f}, {q.high:.2f}] |")
    missing = [label for label in new if label not in {r["setting"] for r in table}]
    if missing:
        print(f"\nnot in {old_spec.study} (or no common seed), not compared: {', '.join(missing)}")


if __name__ == "__main__":
    main()
