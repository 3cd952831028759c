"""Zero-shot figures of the frozen tiny CLIP: image-level top-1 and dense mIoU, no segmentation training.

Dense feature paths: ``DENSE_MODES`` of :mod:`ovbench.models.clip.dense`, the one
implementation the CLIP wrapper's ``dense=`` uses too (``maskclip``: MaskCLIP's path, residual
and MLP kept; ``value``: the value path alone; ``last``: the plain final tokens;
``window<k>``: local-window inference, the best on the shipped average-pooled tiny CLIP,
figures in docs/synthetic_benchmark.md and reports/zeroshot/).

IoU arithmetic is :class:`ovbench.evaluation.OpenVocabIoUMetric` (MMSeg's), and
the datasets are read through :class:`ovbench.data.OVSegDataset`, i.e. exactly
what the segmentation runs use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

import ovbench  # noqa: F401
from ovbench.data.synth.captions import PROMPT, TEMPLATES
from ovbench.data.synth.render import render_scene
from ovbench.data.synth.world import all_classes, dataset_specs, held_out_of_pretraining, segmentation_unseen
from ovbench.models.clip.dense import DENSE_MODES, check_dense_mode, dense_tokens, normalize_map, run_blocks  # noqa: F401
from ovbench.pretrain.train import to_tensor


#: prompt set used for class embeddings: "single" = PROMPT only, "ensemble" = mean over the
#: pretraining caption templates (CLIP's prompt ensembling, Radford et al., 2021)
PROMPTS = {"single": (PROMPT,), "ensemble": TEMPLATES}


def text_embeddings(model, tokenizer, classes: Sequence[str], prompts: str = "single"):
    """L2-normalised class embeddings, ``C x D``."""
    import torch
    import torch.nn.functional as F

    if prompts not in PROMPTS:
        raise ValueError(f"prompts {prompts!r}: expected one of {sorted(PROMPTS)}")
    templates = PROMPTS[prompts]
    with torch.no_grad():
        emb = model.encode_text(tokenizer([t.format(c) for t in templates for c in classes]), normalize=True)
        return F.normalize(emb.view(len(templates), len(classes), -1).mean(0), dim=-1)


def dense_features(model, x, mode: str = "value"):
    """Per-patch embeddings in the joint space, ``B x D x h x w`` (L2-normalised), of an open_clip
    model at its native input size (:func:`ovbench.models.clip.dense.dense_tokens`)."""
    import torch

    v = model.visual
    check_dense_mode(mode, "dense mode")
    with torch.no_grad():
        t = v._embeds(x)
        x_last_in, x_out, _ = run_blocks(v.transformer, t)
        grid = tuple(v.grid_size)
        return normalize_map(dense_tokens(v, mode, t, x_last_in, x_out, grid), grid)


def classification_top1(model, tokenizer, per_class: int = 20, seed: int = 0, size: int = 64,
                        prompts: str = "single") -> Dict[str, float]:
    """Top-1 (percent) over all 64 classes on single-class scenes.

    A thing on a neutral grey background, or one stuff filling the frame.
    Reported for the combinations held out of pretraining, for the other
    segmentation-unseen classes, and for all classes.
    """
    import torch

    classes = [c.name for c in all_classes()]
    text = text_embeddings(model, tokenizer, classes, prompts)
    rng = np.random.default_rng([seed, 12345])
    correct: Dict[str, List[bool]] = {c: [] for c in classes}
    for ci, name in enumerate(classes):
        imgs = np.stack([render_scene(rng, size, fixed=[name]).image for _ in range(per_class)])
        with torch.no_grad():
            f = model.encode_image(to_tensor(imgs), normalize=True)
        pred = (f @ text.t()).argmax(-1).numpy()
        correct[name] = list(pred == ci)
    held = set(held_out_of_pretraining())
    unseen = set(segmentation_unseen())

    def acc(names) -> float:
        vals = [v for n in names for v in correct[n]]
        return round(100.0 * float(np.mean(vals)), 2)

    return {
        "top1_held_out_of_pretraining": acc(sorted(held)),
        "top1_unseen_known_to_clip": acc(sorted(unseen - held)),
        "top1_all": acc(classes),
        "chance": round(100.0 / len(classes), 2),
        "images": per_class * len(classes),
        "per_held_out_class": {n: round(100.0 * float(np.mean(correct[n])), 1) for n in sorted(held)},
    }


def _dataset(root: Path, name: str, split: str = "val"):
    from ovbench.data import OVSegDataset

    return OVSegDataset(vocabulary="vocabulary.json", data_root=str(root / name),
                        data_prefix=dict(img_path=f"img_dir/{split}", seg_map_path=f"ann_dir/{split}"),
                        pipeline=[], serialize_data=False)


def dense_miou(model, tokenizer, root: Path, name: str, mode: str = "value", batch: int = 50,
               seed: int = 0, topk: Optional[int] = None, prompts: str = "single", smooth: int = 1
               ) -> Dict[str, float]:
    """Zero-shot dense mIoU (all / seen / unseen / hIoU, percent) on one evaluation set, and a random predictor's.

    ``topk``: keep, per image, only the ``topk`` classes that the *global* image
    embedding ranks highest (a form of MaskCLIP's prompt denoising, Zhou et al.
    2022: classes the image as a whole does not support are dropped before the
    per-pixel argmax). ``None`` = plain per-patch argmax over the vocabulary.
    ``smooth``: odd k; the patch-level class scores are averaged over k x k
    neighbouring patches before upsampling (a cheap stand-in for MaskCLIP's key
    smoothing: neighbouring patches of one region vote together). 1 = off.
    """
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from ovbench.evaluation.ov_iou_metric import OpenVocabIoUMetric

    ds = _dataset(root, name)
    meta = ds.metainfo
    text = text_embeddings(model, tokenizer, meta["classes"], prompts)
    metric, rand_metric = OpenVocabIoUMetric(), OpenVocabIoUMetric()
    metric.dataset_meta = rand_metric.dataset_meta = meta
    gen = torch.Generator().manual_seed(seed)
    items = [ds.get_data_info(i) for i in range(len(ds))]
    for s in range(0, len(items), batch):
        chunk = items[s: s + batch]
        imgs = np.stack([np.array(Image.open(d["img_path"]).convert("RGB")) for d in chunk])
        gts = torch.from_numpy(np.stack([np.array(Image.open(d["seg_map_path"])) for d in chunk]).astype(np.int64))
        feats = dense_features(model, to_tensor(imgs), mode)
        logits = torch.einsum("bdhw,cd->bchw", feats, text)
        if smooth > 1:
            logits = F.avg_pool2d(logits, smooth, stride=1, padding=smooth // 2, count_include_pad=False)
        if topk is not None and topk < len(meta["classes"]):
            with torch.no_grad():
                glob = model.encode_image(to_tensor(imgs), normalize=True) @ text.t()
            drop = torch.ones_like(glob, dtype=torch.bool)
            drop.scatter_(1, glob.topk(topk, dim=1).indices, False)
            logits = logits.masked_fill(drop[:, :, None, None], float("-inf"))
        logits = F.interpolate(logits, size=gts.shape[-2:], mode="bilinear", align_corners=False)
        pred = logits.argmax(1)
        rand = torch.randint(0, len(meta["classes"]), gts.shape, generator=gen)
        for p, r, g in zip(pred, rand, gts):
            metric.process({}, [{"pred_sem_seg": {"data": p[None]}, "gt_sem_seg": {"data": g[None]}}])
            rand_metric.process({}, [{"pred_sem_seg": {"data": r[None]}, "gt_sem_seg": {"data": g[None]}}])
    out = {k: float(v) for k, v in _quiet_compute(metric).items() if k in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU")}
    rnd = _quiet_compute(rand_metric)
    out.update(random_mIoU=float(rnd["mIoU"]), random_mIoU_unseen=float(rnd["mIoU_unseen"]),
               topk=topk, smooth=smooth, prompts=prompts, classes=len(meta["classes"]), unseen_classes=len(meta["unseen_classes"]), images=len(items))
    return out


def _quiet_compute(metric) -> dict:
    """compute_metrics without IoUMetric's per-class table in the log (the figures are returned)."""
    import logging

    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return metric.compute_metrics(metric.results)
    finally:
        logger.setLevel(level)


def evaluate(root: Path, checkpoint: Optional[str] = None, modes: Sequence[str] = ("window3",), per_class: int = 20,
             seed: int = 0, prompts: str = "single") -> dict:
    """All zero-shot figures of the issue's bars, for one checkpoint (default: the shipped one).

    ``dense[mode][dataset]`` for every dense feature path in ``modes``.
    """
    from ovbench.pretrain.model import load_tiny_clip

    model, tok = load_tiny_clip(checkpoint)
    res = {"classification": classification_top1(model, tok, per_class=per_class, seed=seed, prompts=prompts),
           "dense": {}, "prompts": prompts}
    for mode in modes:
        res["dense"][mode] = {spec.name: dense_miou(model, tok, Path(root), spec.name, mode=mode, seed=seed,
                                                    prompts=prompts)
                              for spec in dataset_specs()[1:]}
    return res
