"""One trial in its own process: ``python -m ovbench.sweep.trial WORK_DIR/request.json``.

Builds the mmengine config (base + params + overrides + data root + seed +
work dir) with :func:`ovbench.train.load_config`, dumps it, trains through
:func:`ovbench.train.train` (mmengine's Runner: the one training path),
evaluates the study's entries of the config's ``eval_datasets`` through the same
function as ``ovbench test`` (one evaluation path), measures cost,
and writes ``result.json`` (status ok | failed). Running in a separate process
means a crash, an OOM or a NaN loss fails this trial only.
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Optional

import ovbench  # noqa: F401  (shims + registration before torch/mmseg)
from ovbench.machine import describe_device

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 40


# Paths ovbench itself writes into the tree: a freshly written report is not a code change,
# so it must not mark the next study's trials ``+dirty``.
GENERATED_PATHS = ("reports",)


def git_commit(root: Path = REPO_ROOT) -> str:
    """The project's commit (with ``+dirty`` when tracked files outside ``reports/`` have local changes), or 'unknown'."""
    exclude = [f":(exclude){p}" for p in GENERATED_PATHS]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *exclude],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def world_size() -> int:
    """Processes of this trial: torchrun's ``WORLD_SIZE`` (1 when started plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def build_config(req: Dict[str, Any]):
    """The trial's mmengine config: base + overrides + params, every dataset under the data root
    (:mod:`ovbench.data.roots`), seed and work dir.

    Under torchrun (``WORLD_SIZE`` > 1) the config uses mmengine's ``pytorch`` launcher
    (:func:`ovbench.train.load_config` switches to gloo when there is no GPU).
    """
    from ovbench.data.roots import data_root, point_config
    from ovbench.sweep import hooks  # noqa: F401  (registers FailOnInvalidLossHook)
    from ovbench.train import load_config

    options: Dict[str, Any] = dict(req.get("overrides") or {})
    options.update(req.get("params") or {})
    launcher = "pytorch" if world_size() > 1 else "none"
    cfg = load_config(req["base_config"], work_dir=req["work_dir"], cfg_options=options or None,
                      seed=int(req["seed"]), launcher=launcher)
    point_config(cfg, data_root(req.get("data_root")))
    drop_unused_validation(cfg)
    hooks = list(cfg.get("custom_hooks") or [])
    if not any(h.get("type") == "FailOnInvalidLossHook" for h in hooks):
        hooks.append(dict(type="FailOnInvalidLossHook", interval=1))  # a NaN loss fails the trial
    cfg.custom_hooks = hooks
    return cfg


def validates(cfg: Any) -> bool:
    """Whether training ever runs the config's validation loop (interval within max_iters)."""
    train_cfg = cfg.get("train_cfg") or {}
    interval, max_iters = train_cfg.get("val_interval"), train_cfg.get("max_iters")
    return bool(cfg.get("val_dataloader")) and not (interval and max_iters and interval > max_iters)


def drop_unused_validation(cfg: Any) -> None:
    """Remove a validation loop that never runs: mmengine builds its dataset at the start of training
    anyway, so a study would need a set (e.g. ADE-150 in the real configs) it never reads. The trial
    evaluates its ``datasets`` itself at the end."""
    if not validates(cfg):
        cfg.val_dataloader, cfg.val_cfg, cfg.val_evaluator = None, None, None


def evaluate(runner: Any, cfg: Any, names: Any, stats_file: Optional[Path] = None) -> Dict[str, Dict[str, float]]:
    """The study's evaluation sets (entries of the config's ``eval_datasets``) through the function
    ``ovbench test`` uses, :func:`ovbench.evaluation.evaluate_datasets`; metrics rounded for storage.
    ``stats_file``: where the per-image statistics go (:mod:`ovbench.evaluation.image_stats`)."""
    from ovbench.evaluation import eval_datasets_of, evaluate_datasets

    sets = eval_datasets_of(cfg, list(names))
    metrics = evaluate_datasets(runner, cfg.test_dataloader, cfg.test_evaluator, sets,
                                stats_file=None if stats_file is None else str(stats_file))
    return {name: {k: round(v, 4) for k, v in row.items()} for name, row in metrics.items()}


PANEL_IMAGES = 3


def save_predictions(model: Any, cfg: Any, names: Any, work_dir: Path,
                     n: int = PANEL_IMAGES) -> Dict[str, list]:
    """Predictions on the first ``n`` images of each set (label PNGs) for the report's qualitative panels.

    Each set is predicted with its own vocabulary (no Runner hooks run here, so the model is given
    the set's classes, prompts and thing classes as ``VocabularyHook`` would).
    """
    import copy

    import numpy as np
    import torch
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS
    from PIL import Image

    from ovbench.evaluation import eval_datasets_of

    out: Dict[str, list] = {}
    model.eval()
    for name, ds_cfg in eval_datasets_of(cfg, list(names)).items():
        dataset = DATASETS.build(copy.deepcopy(ds_cfg))
        meta = dataset.metainfo
        if hasattr(model, "set_vocabulary"):
            things = meta.get("thing_classes")
            model.set_vocabulary(tuple(meta["classes"]), dict(meta.get("class_prompts") or {}),
                                 thing_classes=None if things is None else tuple(things))
        folder = work_dir / "preds" / name
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for i in range(min(n, len(dataset))):
            with torch.no_grad():
                pred = model.test_step(pseudo_collate([dataset[i]]))[0]
            label = pred.pred_sem_seg.data.squeeze(0).cpu().numpy().astype(np.uint8)
            meta_i = pred.metainfo
            dest = folder / f"{i:03d}.png"
            Image.fromarray(label).save(dest)
            entry = {"img_path": meta_i.get("img_path"), "seg_map_path": meta_i.get("seg_map_path"),
                     "pred": str(dest)}
            if "gt_sem_seg" in pred:  # the semantic ground truth as the model saw it (panoptic sets derive it)
                gt_dest = folder / f"{i:03d}_gt.png"
                Image.fromarray(pred.gt_sem_seg.data.squeeze(0).cpu().numpy().astype(np.uint8)).save(gt_dest)
                entry["gt"] = str(gt_dest)
            entries.append(entry)
        out[name] = entries
    return out


def unwrap(model: Any) -> Any:
    """The model inside mmengine's distributed wrapper (rank-0-only work must not call collectives)."""
    from mmengine.model import is_model_wrapper

    return model.module if is_model_wrapper(model) else model


def flops_of(model: Any, cfg: Any) -> Optional[float]:
    """FLOPs of one forward on one crop (torch's flop counter); None when it cannot be measured."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        size = cfg.get("crop_size") or (512, 512)
        param = next(model.parameters())
        x = torch.zeros(1, 3, int(size[0]), int(size[1]), device=param.device)
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, mode="tensor")
        return float(counter.get_total_flops())
    except Exception:  # cost extras never fail a trial
        return None


def constrained_params(model: Any) -> int:
    """Stored-but-not-free trainable parameters of a PEFT method (e.g. a skew-symmetric block stores
    q^2 values, has q(q-1)/2 degrees of freedom), via ``ovbench.peft.count_parameters``; 0 without PEFT."""
    try:
        from ovbench.peft import count_parameters
        from ovbench.peft.base import get_peft_method
    except ImportError:
        return 0
    for module in model.modules():
        if module is not model and getattr(module, "peft_method", None) is not None:
            if get_peft_method(module) is not None:
                rows = count_parameters(module)["all"]
                return int(rows["trainable"] - rows["free"])
    return 0


def cost_of(runner: Any, cfg: Any, train_s: float, wall_s: float) -> Dict[str, Any]:
    """Training cost: parameters, time, s/iter, throughput, peak memory, FLOPs, device."""
    import torch

    model = unwrap(runner.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    free = trainable - constrained_params(model)
    iters = int(runner.iter) or 1
    batch = int(cfg.train_dataloader.get("batch_size", 1)) * world_size()  # global batch
    try:
        s_iter = float(runner.message_hub.get_scalar("train/time").mean())
    except Exception:
        s_iter = train_s / iters
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux -> MiB
    device = describe_device()
    return {
        "trainable_params": trainable, "trainable_params_free": free, "total_params": total,
        "train_time_s": round(train_s, 3), "wall_time_s": round(wall_s, 3), "iters": iters,
        "s_per_iter": round(s_iter, 5), "throughput_img_s": round(iters * batch / max(train_s, 1e-9), 3),
        "peak_mem_mb": round(peak, 1), "peak_mem_kind": "gpu" if torch.cuda.is_available() else "rss",
        "flops": flops_of(model, cfg), "device": device, "processes": world_size(),
    }


def run_trial(req: Dict[str, Any]) -> Dict[str, Any]:
    """Train + evaluate one trial; the result dict that becomes ``result.json`` (every rank trains
    and evaluates; rank 0 alone measures, saves predictions and reports)."""
    from ovbench.data.synth.writers import benchmark_version
    from ovbench.evaluation.image_stats import STATS_FILE
    from ovbench.train import train

    start = time.time()
    work_dir = Path(req["work_dir"])
    cfg = build_config(req)
    cfg_path = work_dir / "config.py"
    if is_rank_zero():
        cfg.dump(str(cfg_path))
    t0 = time.time()
    runner = train(cfg)
    train_s = time.time() - t0
    metrics = evaluate(runner, cfg, req["datasets"], work_dir / STATS_FILE)
    if not is_rank_zero():
        return {"status": "ok", "rank": int(os.environ.get("RANK", "0"))}
    config_hash = hashlib.sha256(cfg_path.read_bytes()).hexdigest()[:16]
    cost = cost_of(runner, cfg, train_s, time.time() - start)
    try:
        predictions = save_predictions(unwrap(runner.model), cfg, req["datasets"], work_dir)
    except Exception as e:  # panels are extras: never fail a trial for them
        predictions = {"error": f"{type(e).__name__}: {e}"}
    return {
        "status": "ok", "metrics": metrics, "cost": cost, "device": cost.pop("device"),
        "params": req.get("params"), "seed": req["seed"], "config_hash": config_hash,
        "git_commit": git_commit(), "work_dir": str(work_dir), "predictions": predictions,
        "benchmark": benchmark_version(req["datasets"]),
    }



def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Atomic write (tmp + rename): a reader never sees half a result."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    req_path = Path(argv[0])
    req = json.loads(req_path.read_text())
    work_dir = Path(req["work_dir"])
    try:
        result = run_trial(req)
        code = 0
    except BaseException as e:  # any failure becomes a recorded, failed trial
        traceback.print_exc()
        sys.stderr.flush()
        result = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000], "seed": req.get("seed"),
                  "params": req.get("params"), "work_dir": str(work_dir)}
        code = 1
    sys.stdout.flush()
    if is_rank_zero():
        write_json(work_dir / "result.json", result)
    from ovbench.train import end_distributed

    end_distributed(wait_for_peers=code == 0)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
