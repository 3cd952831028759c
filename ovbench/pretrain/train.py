"""Contrastive pretraining of the tiny CLIP on captioned synthetic scenes (the web-pretraining role).

CLIP's InfoNCE loss (Radford et al., 2021) with one hard-negative caption per
image added to the image->text side (NegCLIP, Yuksekgonul et al., 2023).
Scenes are generated on the fly from a seeded generator, so ``--seed`` and
``--steps`` reproduce the run. The combinations of
:func:`ovbench.data.synth.world.held_out_of_pretraining` never appear.

This is *not* a segmentation training loop (those all go through mmengine's
Runner): it produces the frozen backbone the benchmark starts from, once.
"""
from __future__ import annotations

import inspect
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

import ovbench  # noqa: F401  (compat shims first)
from ovbench import argtypes
from ovbench.data.synth.captions import caption, hard_negative
from ovbench.data.synth.render import class_info, render_scene
from ovbench.data.synth.world import pretraining_classes
from ovbench.machine import describe_device

MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP normalisation (open_clip's default)
STD = (0.26862954, 0.26130258, 0.27577711)


def to_tensor(images: np.ndarray):
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def sample_batch(rng: np.random.Generator, batch_size: int, size: int = 64, neg_prob: float = 0.5
                 ) -> Tuple[np.ndarray, List[str], List[str], List[int]]:
    """(images, captions, hard-negative captions, index of the image each negative belongs to)."""
    allowed = pretraining_classes()
    stuff = [n for n in allowed if not class_info(n).isthing]
    things = [n for n in allowed if class_info(n).isthing]
    images, caps, negs, neg_owner = [], [], [], []
    for b in range(batch_size):
        u = rng.uniform()
        if u < 0.7:  # full scene
            s = render_scene(rng, size, stuff, things, n_stuff=(1, 3), n_things=(0, 3))
        elif u < 0.85:  # one object on neutral grey (the image-level classification setting)
            s = render_scene(rng, size, (), things, n_things=(1, 1), plain_background=True)
        else:  # one stuff filling the frame
            s = render_scene(rng, size, stuff, (), n_stuff=(1, 1), n_things=(0, 0))
        phrases = list(dict.fromkeys(s.stuff + [t[1] for t in s.things]))
        images.append(s.image)
        caps.append(caption(phrases, rng))
        neg = hard_negative(phrases, rng) if rng.uniform() < neg_prob else None
        if neg is not None:
            negs.append(caption(neg, rng))
            neg_owner.append(b)
    return np.stack(images), caps, negs, neg_owner


def pretrain(
    out: Path,
    seed: int = 0,
    steps: int = 2000,
    batch_size: int = 96,
    lr: float = 1e-3,
    warmup: int = 50,
    threads: Optional[int] = 2,
    save_every: int = 100,
    neg_prob: float = 0.75,
    command: str = "",
    init: Optional[Path] = None,
) -> dict:
    """Train from scratch; writes ``out`` (fp16 state dict), ``out.sha256`` and ``out`` with ``.json`` (the record).

    The defaults are the recipe of the shipped checkpoint (its record is
    ``ovbench/assets/ovbench_tiny_vit.json``), so ``ovbench pretrain-clip`` alone
    reproduces it. CPU results depend on the torch thread count, hence ``threads=2``.
    """
    import open_clip
    import torch
    import torch.nn.functional as F
    from ovbench.pretrain.model import MODEL_NAME, register
    from ovbench.progress import progress_bar

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    register()
    model = open_clip.create_model(MODEL_NAME, device=device, pretrained=str(init) if init else None)
    recipe = {"command": command, "seed": seed, "steps_planned": steps, "batch_size": batch_size, "lr": lr,
              "warmup": warmup, "hard_negative_prob": neg_prob}
    parent = None
    if init:  # a continuation stage: record what it continued
        rec = Path(init).with_suffix(".json")
        parent = json.loads(rec.read_text()) if rec.is_file() else {"checkpoint": str(init)}
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    losses: List[float] = []
    record: dict = {}
    bar = progress_bar(steps, "pretrain-clip", unit="step")
    for step in range(steps):
        images, caps, negs, _ = sample_batch(rng, batch_size, neg_prob=neg_prob)
        x = to_tensor(images).to(device)
        tokens = tokenizer(caps + negs).to(device)
        img = model.encode_image(x, normalize=True)
        txt = model.encode_text(tokens, normalize=True)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * img @ txt.t()  # B x (B + negatives)
        target = torch.arange(len(caps), device=device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, : len(caps)].t(), target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", T=f"{float(scale.detach()):.1f}")
        bar.update(1)
        if (step + 1) % save_every == 0 or step + 1 == steps:
            record = _save(model, out, recipe, step + 1, losses, time.time() - t0, parent)
    bar.close()
    return record


def _save(model, out: Path, recipe: dict, done: int, losses: List[float], wall: float,
          parent: Optional[dict] = None) -> dict:
    import torch

    from ovbench.pretrain.model import MODEL_NAME, sha256_of

    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    tmp = out.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(out)
    digest = sha256_of(out)
    Path(str(out) + ".sha256").write_text(f"{digest}  {out.name}\n")
    record = {
        "model": MODEL_NAME,
        **recipe,
        "steps_done": done,
        "final_loss_mean_last_20": round(float(np.mean(losses[-20:])), 4),
        "first_loss": round(losses[0], 4),
        "wall_time_s": round(wall, 1),
        "device": describe_device(),
        "torch": torch.__version__,
        "checkpoint_sha256": digest,
        "checkpoint_bytes": out.stat().st_size,
    }
    if parent is not None:
        record["continued_from"] = parent
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def add_arguments(parser) -> None:
    """Options default to the shipped checkpoint's recipe, read from :func:`pretrain`'s signature."""
    default = {k: v.default for k, v in inspect.signature(pretrain).parameters.items()}
    parser.add_argument("--seed", type=argtypes.seed, default=default["seed"],
                        help="seed of the scene generator and of the weights (default: %(default)s)")
    parser.add_argument("--steps", type=argtypes.positive(int), default=default["steps"], help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=argtypes.positive(int), default=default["batch_size"],
                        help="images per step, each with its caption (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=default["lr"],
                        help="peak AdamW learning rate, cosine-decayed (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=default["warmup"],
                        help="linear warm-up steps (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=default["threads"],
                        help="torch CPU threads (default: %(default)s, those of the shipped run; another count "
                             "gives other weights; on a 2-core machine shared with other jobs 1 is faster)")
    parser.add_argument("--save-every", type=int, default=default["save_every"],
                        help="write the checkpoint every this many steps (default: %(default)s)")
    parser.add_argument("--neg-prob", type=float, default=default["neg_prob"],
                        help="share of images given a hard-negative caption (default: %(default)s)")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from this checkpoint (a second stage; its record is embedded) "
                             "(default: from scratch)")
    parser.add_argument("--out", type=Path, default=None,
                        help="fp16 checkpoint to write (default: the shipped asset "
                             "ovbench/assets/ovbench_tiny_vit.pt)")


def out_path(args) -> Path:
    """``--out``, or the shipped checkpoint (resolved here: its module imports torch, --help must not)."""
    from ovbench.pretrain.model import CHECKPOINT

    return args.out if args.out is not None else CHECKPOINT


def run(args) -> int:
    command = "ovbench pretrain-clip " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else ""
    rec = pretrain(out_path(args), seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                   threads=args.threads, save_every=args.save_every, neg_prob=args.neg_prob,
                   command=command, init=args.init, warmup=args.warmup)
    print(json.dumps(rec, indent=2))
    return 0
