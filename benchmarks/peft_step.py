"""Time one forward+backward of the CLIP image+text towers per PEFT method (ViT-B/16, random weights, CPU).

    nice .venv/bin/python benchmarks/peft_step.py [--reps 2] [--rounds 2] [--threads 1] [--out FILE.json]

Each method runs OVCLIP.forward (dense MaskCLIP image features + class
embeddings) and a loss on the dense cosine logits, then ``backward()``. The
frozen reference has nothing to differentiate: its "step" is the forward with
autograd off (what a frozen-CLIP training run does) -- the ``frozen`` ratio
therefore includes the whole backward cost of tuning. The frozen text cache is
cleared before every step, so every method runs both towers. Ratios are to the
frozen step and to LoRA (r=8, q/k/v/out, both towers) measured in the same
run; methods are timed round-robin (``--rounds``) and the best median kept, to
damp the noise of a shared machine. Merged inference: H-CLIP (q=128, DCRC)
folded into the weights vs the frozen model, forward with autograd off.
Goals (issue 4): H-CLIP step <= 1.3x LoRA; merged inference <= 1.05x frozen.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ovbench  # noqa: E402,F401  (shims first)
import torch  # noqa: E402

from ovbench.models.clip import OVCLIP  # noqa: E402

METHODS = {
    "frozen": dict(type="frozen"),
    "lora": dict(type="lora", r=8),
    "attention": dict(type="attention"),
    "oft": dict(type="oft", block_size=32),
    "vpt": dict(type="vpt", n_tokens=10),
    "full": dict(type="full"),
    "hclip_q128": dict(type="hclip", q=128),
    "hclip_q128_dcrc": dict(type="hclip", q=128, dcrc="release"),
    "hclip_q128_dcrc_paper": dict(type="hclip", q=128, dcrc="paper"),
}
CLASSES = ["cat", "dog", "car", "tree", "sky", "road", "person", "building"]


def step(model, img, classes, train: bool) -> None:
    model._text_cache.clear()  # both towers run in every method (a frozen text side would be cached)
    if not train:
        with torch.no_grad():
            model(img, classes)
        return
    out = model(img, classes)
    logits = torch.einsum("bdhw,cd->bchw", out["dense"], out["text"])
    loss = logits.square().mean()
    if loss.requires_grad:
        loss.backward()
        for p in model.parameters():
            p.grad = None


def timeit(fn, reps: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: stable ratios on a shared machine; 0: torch default)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    img = torch.randn(args.batch, 3, args.size, args.size)
    classes = CLASSES[: args.classes]
    base = OVCLIP(args.model, pretrained=None)
    state = copy.deepcopy(base.clip.state_dict())

    def build(cfg):
        m = OVCLIP(args.model, pretrained=None, peft=cfg)
        m.clip.load_state_dict(state, strict=False)
        return m.train()

    times = {k: float("inf") for k in args.methods}
    frozen = base.train()
    for _ in range(args.rounds):
        for name in args.methods:
            model = frozen if name == "frozen" else build(METHODS[name])
            times[name] = min(times[name], timeit(lambda: step(model, img, classes, name != "frozen"), args.reps))
            print(f"  {name:<24} {times[name]:.3f} s", flush=True)
            if model is not frozen:
                del model
                gc.collect()
    res = {"model": args.model, "batch": args.batch, "size": args.size, "classes": len(classes),
           "threads": torch.get_num_threads(), "step_s": times}
    if "frozen" in times:
        res["ratio_to_frozen"] = {k: v / times["frozen"] for k, v in times.items()}
    if "lora" in times:
        res["ratio_to_lora"] = {k: v / times["lora"] for k, v in times.items()}
    # merged inference vs frozen (forward, autograd off), interleaved
    h = build(METHODS["hclip_q128_dcrc"]).eval()
    with torch.no_grad():
        for p in h.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    unmerged = timeit(lambda: step(h, img, classes, False), args.reps)
    h.merge()
    fz = base.eval()
    tm, tf = [], []
    for _ in range(args.rounds):
        tm.append(timeit(lambda: step(h, img, classes, False), args.reps))
        tf.append(timeit(lambda: step(fz, img, classes, False), args.reps))
    res["inference_s"] = {"frozen": min(tf), "hclip_merged": min(tm), "hclip_unmerged": unmerged}
    res["merged_over_frozen"] = min(tm) / min(tf)
    res["unmerged_over_frozen"] = unmerged / min(tf)
    print(f"{'method':<24} {'step s':>8} {'x frozen':>9} {'x lora':>8}")
    for k, v in times.items():
        print(f"{k:<24} {v:8.3f} {res.get('ratio_to_frozen', {}).get(k, float('nan')):9.2f} "
              f"{res.get('ratio_to_lora', {}).get(k, float('nan')):8.2f}")
    print(f"inference: frozen {min(tf):.3f} s, H-CLIP merged {min(tm):.3f} s ({res['merged_over_frozen']:.3f}x), "
          f"unmerged {unmerged:.3f} s ({res['unmerged_over_frozen']:.2f}x)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
