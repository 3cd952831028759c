"""Embedded benchmark figures: generation speed and the frozen tiny CLIP's zero-shot numbers.

Usage::

    .venv/bin/python benchmarks/synth_bench.py [--checkpoint PT] [--modes window3,maskclip,value,last]
        [--json OUT.json] [--skip-generation]

Prints generation time for the 1,000-image benchmark, image-level top-1 on
single-class scenes (held-out-of-pretraining combinations reported on their
own) and dense zero-shot mIoU per evaluation set next to a uniformly random
predictor, with the issue's bars marked PASS/FAIL.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import ovbench  # noqa: F401  (compat shims first)
from ovbench.data.synth.writers import ensure_synth_benchmark, generate_benchmark


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="tiny-CLIP checkpoint (default: the shipped, SHA-checked one)")
    p.add_argument("--modes", default="window3,maskclip,value,last",
                   help="comma-separated dense feature paths (maskclip|value|last|window<k>, odd k); "
                        "the first is held to the bars")
    p.add_argument("--prompts", default="single", choices=("single", "ensemble"),
                   help="class embeddings from the one zero-shot prompt or averaged over the caption templates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=int, default=20, help="single-class scenes per class for top-1")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--skip-generation", action="store_true", help="do not time a fresh generation")
    p.add_argument("--report", type=Path, default=None,
                   help="write the zero-shot baseline report (results.json + table.md, every dense mode) here, "
                        "e.g. reports/zeroshot")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from ovbench.pretrain.zeroshot import evaluate

    result: dict = {}
    if not args.skip_generation:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            m = generate_benchmark(tmp, seed=args.seed)
            dt = time.perf_counter() - t0
        result["generation"] = {"images": m["images"], "seconds": round(dt, 2),
                                "images_per_s": round(m["images"] / dt, 1)}
        print(f"generation: {m['images']} images in {dt:.1f} s ({m['images'] / dt:.0f} img/s)"
              f"  bar < 30 s: {'PASS' if dt < 30 else 'FAIL'}")
    root = ensure_synth_benchmark(seed=args.seed)
    t0 = time.perf_counter()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    result.update(evaluate(root, checkpoint=args.checkpoint, modes=modes, per_class=args.per_class, seed=args.seed,
                           prompts=args.prompts))
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    result["bar_mode"] = modes[0]
    result["seed"] = args.seed
    c = result["classification"]
    ok_cls = c["top1_held_out_of_pretraining"] >= 60
    print(f"top-1 over 64 classes (chance {c['chance']}%): "
          f"held-out-of-pretraining {c['top1_held_out_of_pretraining']}% [bar >= 60: {'PASS' if ok_cls else 'FAIL'}], "
          f"other unseen {c['top1_unseen_known_to_clip']}%, all {c['top1_all']}%")
    print("  per held-out class: " + ", ".join(f"{k} {v}%" for k, v in c["per_held_out_class"].items()))
    all_ok = ok_cls
    for mode in modes:
        print(f"dense zero-shot, {mode} path{' (held to the bars)' if mode == modes[0] else ''}:")
        print(f"  {'dataset':<20} {'C':>3} {'imgs':>4} {'mIoU':>6} {'seen':>6} {'unseen':>6} {'hIoU':>6}"
              f" {'rnd':>5} {'rnd_un':>6}  bar(unseen>=10 and >=3x random)")
        for name, d in result["dense"][mode].items():
            ok = d["mIoU_unseen"] >= 10 and d["mIoU_unseen"] >= 3 * d["random_mIoU_unseen"]
            if mode == modes[0]:
                all_ok &= ok
            print(f"  {name:<20} {d['classes']:>3} {d['images']:>4} {d['mIoU']:>6.2f} {d['mIoU_seen']:>6.2f} "
                  f"{d['mIoU_unseen']:>6.2f} {d['hIoU']:>6.2f} {d['random_mIoU']:>5.2f} "
                  f"{d['random_mIoU_unseen']:>6.2f}  {'PASS' if ok else 'FAIL'}")
    result["bars_pass"] = bool(all_ok)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.report:
        write_report(args.report, result, modes, argv if argv is not None else sys.argv[1:])
    return 0


def write_report(out: Path, result: dict, modes, argv) -> None:
    """``results.json`` and ``table.md``: dense zero-shot mIoU of the frozen tiny CLIP per dense mode."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    sets = list(result["dense"][modes[0]])
    lines = ["| dense mode | " + " | ".join(f"{s} mIoU / seen / unseen / hIoU" for s in sets) + " |",
             "|---|" + "---|" * len(sets)]
    for mode in modes:
        cells = [" / ".join(f"{result['dense'][mode][s][k]:.2f}" for k in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"))
                 for s in sets]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    rnd = " / ".join(f"{result['dense'][modes[0]][s]['random_mIoU_unseen']:.2f}" for s in sets)
    c = result["classification"]
    (out / "table.md").write_text(
        "# Zero-shot baseline: every dense path of the frozen tiny CLIP\n\n"
        f"`python benchmarks/synth_bench.py {' '.join(argv)}` (ovbench/pretrain/zeroshot.py; the paths are "
        "ovbench/models/clip/dense.py, the CLIP wrapper's `dense=`). Shipped tiny CLIP, embedded benchmark, "
        f"seed {result.get('seed', 0)}, prompt set '{result['prompts']}', no segmentation training; "
        f"evaluation took {result['eval_seconds']} s. Random predictor's unseen mIoU: {rnd}. "
        f"Image-level top-1 (held out of pretraining): {c['top1_held_out_of_pretraining']} %.\n\n"
        + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
