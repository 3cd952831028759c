"""What a recipe change does to every setting of a study: two studies with the same settings, paired by seed.

    python benchmarks/recipe_change.py ablations/peft_methods.yaml ablations/recipe_v3.yaml
    python benchmarks/recipe_change.py A.yaml B.yaml --metric synth_large/mIoU --reports reports
    python benchmarks/recipe_change.py ablations/block_size.yaml ablations/block_size.yaml --old-reports reports/v2
    python benchmarks/recipe_change.py ablations/noise_floor.yaml ablations/decoder_v4.yaml --old-reports reports/v3 \
        --pair peft=hclip aggregator=one_stage    # one setting each, different swept keys

A recipe probe (issue 20) asks whether a candidate recipe helps every method, not one. Running the old
recipe's rows again in the new study would double its cost, and on one machine line a seed's trial
reproduces exactly across studies (every probe's reference row has), so this script pairs the new
study's trials with the old study's committed ones instead: the same setting (the same swept keys and
values) and the same seed. Per setting it prints both means, the paired difference new - old (mean ±
95% CI, paired t, p Holm-corrected across settings) and both seed sds with the F interval of their
ratio (:func:`ovbench.report.stats.sd_ratio`). Studies that sweep different keys (a one-setting probe
against one row of a study) are paired setting by setting with ``--pair OLD NEW``, each label as the
study's own report prints it.

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


def require_columns(df, keys: Sequence[str], metric: str, name: str) -> None:
    missing = [c for c in (*keys, metric, "seed", "state") if c not in df.columns]
    if missing:
        raise ValueError(f"the {name} study's trials.csv has no column(s) {', '.join(missing)}")


def paired_values(old, new, keys: Sequence[str], metric: str) -> Tuple[Values, Values]:
    """``{setting label: {seed: metric}}`` of each study's COMPLETE trials. The labels are made from both
    frames at once, so one value prints alike in both (a study sweeping only whole numbers would
    otherwise print ``5`` where the other prints ``5.0``)."""
    import pandas as pd

    from ovbench.report.tables import trial_labels

    for name, df in (("old", old), ("new", new)):
        require_columns(df, keys, metric, name)
    both = pd.concat([old, new], ignore_index=True)
    labels = trial_labels(both, list(keys))
    split = len(old)
    return labelled_values(old, labels[:split], metric), labelled_values(new, labels[split:], metric)


def labelled_values(df, labels: Sequence[str], metric: str) -> Values:
    """``{label: {seed: metric}}`` of ``df``'s COMPLETE trials, ``labels`` one per row."""
    from ovbench.report import stats

    return {k: v.get(metric, {}) for k, v in stats.per_seed(df, list(labels), [metric]).items()}


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


def study_values(df, keys: Sequence[str], metric: str, name: str) -> Values:
    """``{setting label: {seed: metric}}`` of one study's COMPLETE trials, labelled by its own keys."""
    from ovbench.report.tables import trial_labels

    require_columns(df, keys, metric, name)
    return labelled_values(df, trial_labels(df, list(keys)), metric)


def named_pairs(old: Values, new: Values, pairs: Sequence[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """``--pair`` labels checked against each study's settings (a ValueError names the unknown one)."""
    for (side, values), labels in zip((("old", old), ("new", new)), zip(*pairs)):
        unknown = [label for label in labels if label not in values]
        if unknown:
            raise ValueError(f"--pair: {', '.join(map(repr, unknown))} is not a setting of the {side} study; "
                             f"its settings are: {', '.join(values) or 'none'}")
    return list(pairs)


def rows(old: Values, new: Values, pairs: Sequence[Tuple[str, str]] = ()) -> List[Dict[str, object]]:
    """One row per (old, new) setting pair with at least one common seed: ``pairs`` if given, else every
    setting label the two studies share."""
    from ovbench.report import stats

    if not pairs:
        pairs = [(label, label) for label in new if label in old]
    pairs = [(o, n) for o, n in pairs if set(new[n]) & set(old[o])]
    diffs = [stats.paired_difference(new[n], old[o]) for o, n in pairs]
    out = []
    for (o, n), d, p in zip(pairs, diffs, stats.holm([d.p for d in diffs])):
        seeds = sorted(set(new[n]) & set(old[o]))
        a, b = [old[o][s] for s in seeds], [new[n][s] for s in seeds]
        out.append({"setting": n if o == n else f"{n} vs {o}", "new_setting": n, "seeds": seeds, "old": stats.mean_ci(a),
                    "new": stats.mean_ci(b), "diff": d, "p_holm": p,
                    "sd_old": statistics.stdev(a) if len(a) > 1 else math.nan,
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
    parser.add_argument("--pair", nargs=2, action="append", metavar=("OLD", "NEW"), default=[],
                        help="pair the old study's setting OLD with the new study's NEW (labels as the reports "
                             "print them, e.g. --pair peft=hclip aggregator=one_stage); repeatable; needed when "
                             "the studies sweep different keys")
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
    if list(old_spec.space) != list(new_spec.space) and not args.pair:
        sys.exit(f"error: {args.new} sweeps {', '.join(new_spec.space)} but {args.old} sweeps "
                 f"{', '.join(old_spec.space)}; settings pair by label only over the same keys: name the "
                 f"pairs with --pair OLD NEW")
    frames = []
    for spec, file, root in ((old_spec, args.old, old_reports), (new_spec, args.new, reports)):
        csv = root / spec.study / "trials.csv"
        if not csv.is_file():
            sys.exit(f"error: {csv}: no trials.csv for study '{spec.study}' of {file}; run and report it first")
        frames.append(pd.read_csv(csv))
    metric = args.metric or new_spec.objective_metric
    try:
        if args.pair:
            old = study_values(frames[0], list(old_spec.space), metric, "old")
            new = study_values(frames[1], list(new_spec.space), metric, "new")
        else:
            old, new = paired_values(*frames, list(new_spec.space), metric)
    except ValueError as e:
        sys.exit(f"error: {e} (--metric {metric})")
    try:
        pairs = named_pairs(old, new, [tuple(p) for p in args.pair])
    except ValueError as e:
        sys.exit(f"error: {e}")
    lines = [distinct_values(df, "device") for df in frames]
    error, warning = device_problem(*lines)
    if error and not args.allow_devices:
        sys.exit(f"error: {error}. --allow-devices pairs them anyway")
    table = rows(old, new, pairs)
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
    missing = [label for label in new if label not in {r["new_setting"] for r in table}]
    if missing:
        print(f"\nnot in {old_spec.study} (or no common seed), not compared: {', '.join(missing)}")


if __name__ == "__main__":
    main()
