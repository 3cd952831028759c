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
    from ovbench.report.frame import open_for_report, study_frame

    study = open_for_report(str(REPO / "ablations" / "fisa_bottleneck.yaml")).study
    df = study_frame(study)
    df = df[df["state"] == "COMPLETE"]
    entries = [("frozen (zero-shot)", zero_shot_metrics()[dataset], 0, 0.0)]
    for _, r in df.iterrows():
        metrics = {c.split("/", 1)[1]: r[c] for c in df.columns if c.startswith(dataset + "/")}
        entries.append((str(r["model"]), metrics, int(r["trainable_params"]), float(r["train_time_s"])))
    total = clip_parameters()
    rows = []
    for name, metrics, trainable, seconds in entries:
        for mode in MODES:
            row = {"method": name, "mode": mode.rstrip("/") or "normal"}
            row.update({c: metrics.get(mode + c) for c in COLUMNS})
            if not mode:
                row.update(trainable=trainable, pct_clip=100.0 * trainable / total, train_s=seconds)
            rows.append(row)
    return rows


def render(rows: List[dict], dataset: str) -> str:
    head = ["method", "mode", *COLUMNS, "trainable params", "% of CLIP", "train time (s)"]
    out = [f"### {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"] if r["mode"] == "normal" else "", r["mode"]]
        cells += ["-" if r[c] is None else f"{float(r[c]):.2f}" for c in COLUMNS]
        if r["mode"] == "normal":
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
            "One seed; every variant on the same frozen stage-1 generator (mask_generator_checkpoint='synth'). "
            "normal = the pipeline; oracle_masks = ground-truth segments as proposals; oracle_classes = "
            "predicted proposals given their true class (docs/fisa.md). Training time on one CPU core "
            "(the sweep ran 2 trials at a time on 2 cores); % of CLIP = trainable / all parameters of "
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
