"""Does a seed's result follow how far its training got? The final training loss against the metric.

    python benchmarks/loss_vs_seed_noise.py ablations/components.yaml
    python benchmarks/loss_vs_seed_noise.py ablations/components.yaml --work-dir DIR \
        --metric synth_medium_shift/mIoU_unseen

Issue 20 asks whether the embedded recipe (200 iterations, cosine decay) stops mid-descent. If it
does, seeds differ in how far they got, and a seed with a lower final training loss should score
higher. This reads a finished study, without running anything:

* per COMPLETE trial, the last training loss mmengine logged (``vis_data/scalars.json``: the mean
  over the last logging window: 10 iterations, mmengine's default) and the metric (default: the study's objective);
* within each setting both are centred on the setting's mean, so the settings' own differences
  do not count; the Pearson correlation of the centred values over all trials says how much of the
  seed-to-seed spread goes with the final loss. Its p-value uses trials - settings - 1 degrees of
  freedom (centring spends one per setting).

A strong negative correlation points at the recipe (train longer, or to a stable point), not at
the evaluation sets, as the lever on the seed noise.

**When each seed leaves the early plateau.** The CAT-Seg-style trials' per-class binary
cross-entropy first falls, within about 20 iterations, to the loss of predicting each class at its
prior without using the image (about 0.10 nats with synth_train's 48 classes: the entropy of 1/48;
training-batch pixel accuracy near 0), stays
there for a seed-dependent number of iterations, and only then starts to segment. The script also
prints, per trial, the first logged iteration whose training-batch pixel accuracy (``acc_seg``,
the logging window's mean) reaches ``--exit-acc`` percent (default 20), and correlates it with the
metric the same way: a strong negative r says the seeds differ in how long they sat on the
plateau.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import ovbench  # noqa: F401
from ovbench.report import stats
from ovbench.report.frame import open_for_report, study_frame, swept_params
from ovbench.report.tables import trial_labels


def training_log(trial_dir: str) -> List[Dict[str, float]]:
    """The training entries (those with a ``loss``) mmengine's visualizer backend wrote for a trial."""
    entries = []
    for log in sorted(Path(trial_dir).glob("*/vis_data/scalars.json")):
        for line in log.read_text().splitlines():
            entry = json.loads(line) if line.strip() else {}
            if "loss" in entry:
                entries.append(entry)
    return entries


def final_loss(entries: List[Dict[str, float]]) -> Optional[float]:
    """The last logged training loss, if any."""
    return float(entries[-1]["loss"]) if entries else None


def plateau_exit(entries: List[Dict[str, float]], acc: float) -> Optional[int]:
    """The first logged iteration whose training pixel accuracy reaches ``acc`` percent (None: never)."""
    for entry in entries:
        if float(entry.get("acc_seg", 0.0)) >= acc:
            return int(entry["iter"])
    return None


def centred_pairs(groups: Dict[str, List[Tuple[float, float]]]) -> Tuple[List[float], List[float]]:
    xs: List[float] = []
    ys: List[float] = []
    for pairs in groups.values():
        if len(pairs) < 2:
            continue
        mx = sum(p[0] for p in pairs) / len(pairs)
        my = sum(p[1] for p in pairs) / len(pairs)
        xs += [p[0] - mx for p in pairs]
        ys += [p[1] - my for p in pairs]
    return xs, ys


def pearson(xs: List[float], ys: List[float], df: int) -> Tuple[float, float]:
    """(r, two-sided p with ``df`` degrees of freedom)."""
    from scipy.stats import t as student_t

    sxy = sum(x * y for x, y in zip(xs, ys))
    r = sxy / math.sqrt(sum(x * x for x in xs) * sum(y * y for y in ys))
    if df < 1 or abs(r) >= 1.0:
        return r, math.nan
    t = r * math.sqrt(df / (1.0 - r * r))
    return r, float(2 * student_t.sf(abs(t), df))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ablation", help="ablation file of a study that has run")
    parser.add_argument("--work-dir", default=None, help="the sweep work dir it ran with (default: the file's)")
    parser.add_argument("--metric", default=None, help="metric column (default: the study's objective)")
    parser.add_argument("--exit-acc", type=float, default=20.0,
                        help="training pixel accuracy (percent) that marks leaving the early plateau")
    args = parser.parse_args()
    reported = open_for_report(args.ablation, work_dir=args.work_dir)
    metric = args.metric or reported.spec.objective_metric
    df = study_frame(reported.study)
    df = df[df["state"] == "COMPLETE"]
    labels = trial_labels(df, swept_params(reported.study))
    groups: Dict[str, List[Tuple[float, float]]] = {}
    exits: Dict[str, List[Tuple[float, float]]] = {}
    print(f"| setting | seed | final training loss | plateau left at iteration (acc >= {args.exit_acc:g}%) "
          f"| {metric} |\n|---|---|---|---|---|")
    for label, row in zip(labels, df.to_dict("records")):
        entries = training_log(str(row["work_dir"]))
        loss, exit_iter = final_loss(entries), plateau_exit(entries, args.exit_acc)
        value = row.get(metric)
        if loss is None or not stats.finite(value):
            continue
        groups.setdefault(label, []).append((loss, float(value)))
        if exit_iter is not None:
            exits.setdefault(label, []).append((float(exit_iter), float(value)))
        print(f"| {label} | {row['seed']} | {loss:.4f} | {exit_iter if exit_iter is not None else 'never'} "
              f"| {value:.2f} |")
    if not print_correlation(groups, f"final loss vs {metric}"):
        print("\ntoo few trials with several seeds to correlate")
        return 1
    print_correlation(exits, f"plateau exit iteration vs {metric}; trials that never left it excluded")
    return 0


def print_correlation(groups: Dict[str, List[Tuple[float, float]]], what: str) -> bool:
    """Print the within-setting Pearson r of the pairs; False when there are too few to correlate."""
    xs, ys = centred_pairs(groups)
    settings = sum(1 for g in groups.values() if len(g) >= 2)
    df = len(xs) - settings - 1
    if df < 1 or not any(xs):
        return False
    r, p = pearson(xs, ys, df)
    print(f"\nwithin-setting Pearson r ({what}) = {r:+.2f} over {len(xs)} trials in "
          f"{settings} settings ({stats.fmt_p(p)}, {df} df)")
    return True


if __name__ == "__main__":
    raise SystemExit(main())
