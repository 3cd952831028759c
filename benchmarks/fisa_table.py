"""The mask-classification table of issue 6: PQ, SQ, RQ, mIoU, seen / unseen mIoU, trainable
parameters and training time of every stage-2 variant, with the two oracle rows (docs/fisa.md).

Reads the ``fisa_bottleneck`` study (run ``ovbench run ablations/fisa_bottleneck.yaml``
first) and adds the zero-shot frozen classifier, which has nothing to train and so is no
sweep trial: it is evaluated here once with ``ovbench test configs/synth/maskcls/frozen.py``.
Prints the table and writes it to ``reports/fisa_bottleneck/bars.md``.

    python benchmarks/fisa_table.py [--dataset synth_large] [--out reports/fisa_bottleneck/bars.md]
"""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import ovbench  # noqa: F401
from ovbench.report import stats

REPO = Path(__file__).resolve().parents[1]
MODES = ("", "oracle_masks/", "oracle_classes/")
COLUMNS = ("PQ", "SQ", "RQ", "mIoU", "mIoU_seen", "mIoU_unseen")


def clip_parameters() -> int:
    """Parameters of the classifier's CLIP (both towers): the base of the '% of CLIP' column."""
    import open_clip

    return sum(p.numel() for p in open_clip.create_model("ovbench-tiny-vit").parameters())


@functools.lru_cache(maxsize=1)
def zero_shot_metrics() -> Dict[str, Dict[str, float]]:
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([sys.executable, "-m", "ovbench.cli", "test", str(REPO / "configs/synth/maskcls/frozen.py"),
                        "--work-dir", work], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        return json.loads((Path(work) / "eval_results.json").read_text())


def rows_for(dataset: str) -> List[dict]:
    """One row per method and mode; a trained method's cells are its mean over seeds with the 95% CI."""
    from ovbench.report.frame import open_for_report, study_frame

    study = open_for_report(str(REPO / "ablations" / "fisa_bottleneck.yaml")).study
    df = study_frame(study)
    df = df[df["state"] == "COMPLETE"]
    total = clip_parameters()
    zero_shot = {k: [v] for k, v in zero_shot_metrics()[dataset].items()}
    entries = [("frozen (zero-shot)", zero_shot, [0], [0.0])]
    for model, runs in df.groupby("model", sort=False):
        metrics = {c.split("/", 1)[1]: list(runs[c]) for c in df.columns if c.startswith(dataset + "/")}
        entries.append((str(model), metrics, list(runs["trainable_params"]), list(runs["train_time_s"])))
    rows = []
    for name, metrics, trainable, seconds in entries:
        for mode in MODES:
            row = {"method": name, "mode": mode.rstrip("/") or "normal", "seeds": len(seconds)}
            row.update({c: stats.mean_ci(metrics.get(mode + c, [])) for c in COLUMNS})
            if not mode:
                row.update(trainable=int(trainable[0]), pct_clip=100.0 * trainable[0] / total,
                           train_s=stats.mean_ci(seconds).mean)
            rows.append(row)
    return rows


def render(rows: List[dict], dataset: str) -> str:
    head = ["method", "seeds", "mode", *COLUMNS, "trainable params", "% of CLIP", "train time (s)"]
    out = [f"### {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        normal = r["mode"] == "normal"
        cells = [r["method"] if normal else "", str(r["seeds"]) if normal else "", r["mode"]]
        cells += [stats.fmt_pm(r[c].mean, r[c].half_width) for c in COLUMNS]
        if normal:
            cells += [f"{r['trainable']:,}", f"{r['pct_clip']:.2f}", f"{r['train_s']:.0f}"]
        else:
            cells += ["", "", ""]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=["synth_large", "synth_medium_shift", "synth_small"])
    parser.add_argument("--out", default=str(REPO / "reports" / "fisa_bottleneck" / "bars.md"))
    args = parser.parse_args()
    text = ["# Mask-classification family on the embedded benchmark (issue 6 table)", "",
            "Every trained variant: mean over its seeds ± " + stats.CI_METHOD + "; the zero-shot "
            "classifier trains nothing, so it is one evaluation. Every variant runs on the same frozen "
            "stage-1 generator (mask_generator_checkpoint='synth'). "
            "normal = the pipeline; oracle_masks = ground-truth segments as proposals; oracle_classes = "
            "predicted proposals given their true class (docs/fisa.md). Training time: mean over seeds, "
            "on one CPU core (the sweep ran 2 trials at a time on 2 cores); % of CLIP = trainable / all parameters of "
            "the tiny CLIP (both towers). Produced by benchmarks/fisa_table.py.", ""]
    for ds in args.dataset:
        text.append(render(rows_for(ds), ds))
    body = "\n".join(text)
    print(body)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
