"""Time and peak memory of one training iteration of the open-vocabulary segmentor, per method.

ViT-B/16 at 384x384 (random CLIP weights: cost, not accuracy), batch 1, the
COCO-Stuff vocabulary size (171), CAT-Seg's aggregator. Methods: CAT-Seg
('attention' tuning), H-CLIP (q=128, text-orthogonal, DCRC), LoRA (r=16 on
q/k/v/out) and full fine-tuning. Each method runs in its own subprocess so that
peak memory (GPU allocator peak on CUDA, else process max RSS) is its own; times
are medians over --iters iterations after --warmup. Ratios are against CAT-Seg
measured in the same run.

    python benchmarks/train_step.py                 # CPU (or the GPU if one is visible)
    python benchmarks/train_step.py --size 224 --iters 2   # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "catseg" / "catseg_vitb16_coco-stuff171_384.py"
METHODS = {
    "catseg": dict(type="attention"),
    "hclip": dict(type="hclip", q=128, orth="text", dcrc="paper"),
    "lora": dict(type="lora", r=16, alpha=16, sites=["q", "k", "v", "out"]),
    "full": dict(type="full"),
}


def measure(method: str, size: int, classes: int, iters: int, warmup: int, device: str) -> dict:
    import resource

    import ovbench  # noqa: F401
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from ovbench.peft import count_parameters

    init_default_scope("mmseg")
    torch.manual_seed(0)
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.clip.pretrained = None
    cfg.model.clip.peft = METHODS[method]
    cfg.model.class_names = [f"class {i}" for i in range(classes)]
    model = MODELS.build(cfg.model).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, size, size), device=device))
    sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
    inputs = torch.randn(1, 3, size, size, device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = model.loss(inputs, [sample])
        loss = sum(v for k, v in losses.items() if k.startswith("loss"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(warmup):
        step()
    times = [step() for _ in range(iters)]
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
        where = torch.cuda.get_device_name(0)
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        where = f"cpu x{torch.get_num_threads()} threads"
    counts = count_parameters(model.backbone.clip)
    head = sum(p.numel() for p in model.aggregator.parameters())
    clip_trainable = counts["all"]["trainable"]
    return dict(method=method, step_s=statistics.median(times), peak_mb=peak_mb, device=where,
                clip_trainable=clip_trainable, head_params=head)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--classes", type=int, default=171)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        print(json.dumps(measure(args.worker, args.size, args.classes, args.iters, args.warmup, args.device)))
        return 0
    rows = []
    for method in args.methods:
        cmd = [sys.executable, __file__, "--worker", method, "--size", str(args.size), "--classes",
               str(args.classes), "--iters", str(args.iters), "--warmup", str(args.warmup), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if out.returncode != 0:
            print(f"{method}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    ref = next((r for r in rows if r["method"] == "catseg"), rows[0] if rows else None)
    if ref is None:
        return 1
    print(f"one training iteration, ViT-B/16 {args.size}x{args.size}, batch 1, {args.classes} classes, {ref['device']}")
    print(f"{'method':<8} {'step s':>8} {'x CAT-Seg':>10} {'peak MB':>9} {'x CAT-Seg':>10} {'CLIP trainable':>15}")
    for r in rows:
        print(f"{r['method']:<8} {r['step_s']:>8.2f} {r['step_s'] / ref['step_s']:>10.2f} {r['peak_mb']:>9.0f} "
              f"{r['peak_mb'] / ref['peak_mb']:>10.2f} {r['clip_trainable']:>15,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
