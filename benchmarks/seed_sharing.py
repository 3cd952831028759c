"""How much of each study's seed noise a paired test removes: a two-way split of the committed reports.

    python benchmarks/seed_sharing.py                         # every ablation with reports/<study>/trials.csv
    python benchmarks/seed_sharing.py ablations/clip_lr.yaml --metric synth_large/mIoU

A seed fixes a trial's data order and random flips, which are the same whatever the swept setting
changes, and, with ``model.own_head_stream=True``, the head's initial weights (up to benchmark v4 the
head draws them after the CLIP side's PEFT initialisation, so they change with the setting;
ovbench/models/seeding.py). If part of what a seed does to the objective is the same in every setting, a
difference paired by seed (what ``ovbench report`` tests) cancels it, and the noise a comparison must
beat is smaller than the seed sd that ``benchmarks/noise_floor.py`` reports. This script reads each
study's ``trials.csv`` (no training, no storage needed) and splits the within-setting seed sd, by a
two-way ANOVA over settings x seeds (:func:`ovbench.report.stats.seed_split`), into

* **shared**: what a seed does alike in every setting of the study (cancels in a paired test);
* **interaction**: the rest; a paired difference has sd sqrt(2) x this,

and prints beside them the settings' own part (the sd of their means beyond the interaction, with its F
test): a study's effect size, or, in ablations/seed_parts.yaml, whose settings are random image orders,
the order's share of the seed noise (the "shared" column is then the initial weights' and flips' share).
Then it prints the minimum detectable difference of a paired test over 5 seeds (80% power, alpha 0.05)
from the interaction (measured pairing) and from the pooled seed sd as if seeds were unrelated.
Studies whose settings break training on some seeds (learning_rate's 4e-2) inflate the shared part
with those runs. Figures are for this machine's trials; never compare them across machines.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ablations", nargs="*", help="ablation files (default: every one with committed reports)")
    parser.add_argument("--metric", default=None, help="default: each study's objective")
    parser.add_argument("--reports", default="reports", help="folder of the committed reports")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from ovbench.report import stats
    from ovbench.report.tables import trial_labels
    from ovbench.sweep.spec import load_spec

    files = args.ablations or sorted(glob.glob("ablations/*.yaml"))
    print("| study | metric | seeds x settings | pooled seed sd | shared | interaction | F (p) | "
          "settings (p) | MDD 5 seeds, paired | MDD 5 seeds, seeds unrelated |\n|---|---|---|---|---|---|---|---|---|---|")
    for file in files:
        spec = load_spec(file, check_config=False)
        csv = Path(args.reports) / spec.study / "trials.csv"
        if not csv.is_file():
            continue
        df = pd.read_csv(csv)
        metric = args.metric or spec.objective_metric
        values = {k: v.get(metric, {}) for k, v in
                  stats.per_seed(df, trial_labels(df, list(spec.space)), [metric]).items()}
        split = stats.seed_split(values)
        if not math.isfinite(split.pooled_sd):
            continue
        paired = stats.minimum_detectable_difference(math.sqrt(2) * split.interaction_sd, 5)
        unrelated = stats.minimum_detectable_difference(math.sqrt(2) * split.pooled_sd, 5)
        print(f"| {spec.study} | {metric} | {split.seeds} x {split.settings} | {split.pooled_sd:.2f} | "
              f"{split.shared_sd:.2f} | {split.interaction_sd:.2f} | {split.f:.2f} ({stats.fmt_p(split.p)}) | "
              f"{split.setting_sd:.2f} ({stats.fmt_p(split.setting_p)}) | {paired:.2f} | {unrelated:.2f} |")


if __name__ == "__main__":
    main()
