"""Embedded benchmark figures: generation speed and the frozen tiny CLIP's zero-shot numbers.

Usage::

    .venv/bin/python benchmarks/synth_bench.py [--checkpoint PT] [--mode value|maskclip|tokens]
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
    p.add_argument("--modes", default="window3,value,maskclip,tokens",
                   help="comma-separated dense feature paths (window3|window5|value|maskclip|tokens); "
                        "the first is held to the bars")
    p.add_argument("--prompts", default="single", choices=("single", "ensemble"),
                   help="class embeddings from the one zero-shot prompt or averaged over the caption templates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-class", type=int, default=20, help="single-class scenes per class for top-1")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--skip-generation", action="store_true", help="do not time a fresh generation")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
