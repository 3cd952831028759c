"""``ovbench test CONFIG [CHECKPOINT]``: evaluate one model on every evaluation set, one row each.

Mirrors mmseg's ``tools/test.py`` (``--work-dir``, ``--cfg-options``, ``--out``,
``--show-dir``, ``--launcher``) and adds
multi-dataset evaluation: the sets come from the config's ``eval_datasets``
(``{name: dataset config}``; default all, ``--datasets`` picks some), falling
back to its ``test_dataloader``. Without a checkpoint the model is evaluated as
built (zero-shot MaskCLIP configs need none). Results are printed as a table
and written to ``WORK_DIR/eval_results.{json,csv}``.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional

import ovbench  # noqa: F401  (shims + registration first)

from ovbench.argtypes import seed as seed_arg
from ovbench.train import (  # noqa: F401  (CheckpointError: re-exported)
    CfgOptions,
    CheckpointError,
    check_checkpoint,
    check_model_builds,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="mmengine config file (.py)")
    parser.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (omit for zero-shot models)")
    parser.add_argument("--datasets", nargs="+", default=None, help="names from the config's eval_datasets")
    parser.add_argument("--work-dir", help="where logs and results go (default: ./work_dirs/<config>/test)")
    parser.add_argument("--data-root", help="where the datasets are: a config's data/<folder> becomes DIR/<folder> "
                        "(default: $OVBENCH_DATA_ROOT, else ./data; docs/datasets.md)")
    parser.add_argument("--seed", type=seed_arg, default=0)
    parser.add_argument("--cfg-options", nargs="+", action=CfgOptions, help="override config keys")
    parser.add_argument("--out", help="write raw predictions (label PNGs) to OUT/<set name>/, as mmseg's --out")
    parser.add_argument("--show-dir", help="write painted predictions (the config's SegVisualizationHook, every "
                        "`interval`-th image) under this directory, as mmseg's --show-dir")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="job launcher for distributed evaluation (default: %(default)s)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)


def evaluate_config(
    config: str,
    checkpoint: Optional[str] = None,
    datasets: Optional[List[str]] = None,
    work_dir: Optional[str] = None,
    cfg_options: Optional[dict] = None,
    seed: int = 0,
    out: Optional[str] = None,
    show_dir: Optional[str] = None,
    launcher: str = "none",
    data_root: Optional[str] = None,
) -> Dict[str, Dict[str, float]]:
    """``{set name: metrics}`` for the model of ``config`` (+ ``checkpoint``); every set is checked on disk
    (under ``data_root``, see :mod:`ovbench.data.roots`) before the model is built."""
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from ovbench.data.check import check_datasets
    from ovbench.data.roots import data_root as root_of
    from ovbench.data.roots import point_config
    from ovbench.evaluation import eval_datasets_of, evaluate_datasets
    from ovbench.train import load_config

    if work_dir is None:
        work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(config))[0], "test")
    cfg = load_config(config, work_dir=work_dir, cfg_options=cfg_options, seed=seed, launcher=launcher)
    check_model_builds(cfg, config)
    if checkpoint is not None:
        check_checkpoint(checkpoint)
    if show_dir is not None:
        paint_predictions(cfg, show_dir)
    cfg.load_from = checkpoint
    cfg.resume = False
    point_config(cfg, root_of(data_root))
    sets = eval_datasets_of(cfg, datasets)
    check_datasets(sets)
    for key in ("train_dataloader", "train_cfg", "optim_wrapper", "param_scheduler"):
        cfg[key] = None  # evaluation only: never build the training set (it may not exist here)
    runner = Runner.from_cfg(cfg)
    runner.call_hook("before_run")  # as Runner.test() does: hooks (logger, visualiser) set up here
    runner.load_or_resume()
    results: Dict[str, Dict[str, float]] = {}
    for name, dataset in sets.items():
        results.update(evaluate_datasets(runner, cfg.test_dataloader, cfg.test_evaluator, {name: dataset},
                                         output_root=out))
        if show_dir is not None and is_main_process():
            file_painted(show_dir, name)
    runner.call_hook("after_run")
    if is_main_process():  # under a launcher every rank gets the (all-reduced) metrics; one writes them
        _write(results, work_dir)
    return results


def paint_predictions(cfg: Any, show_dir: str) -> None:
    """Turn on the config's visualization hook and save its drawings under ``show_dir`` (mmseg's way)."""
    hooks = cfg.get("default_hooks") or {}
    if "visualization" not in hooks:
        raise ValueError("--show-dir needs default_hooks.visualization (e.g. dict(type='SegVisualizationHook'))")
    hooks["visualization"]["draw"] = True
    cfg.visualizer["save_dir"] = show_dir
    # mmengine keeps one visualizer per name for the process; a name of its own makes this save_dir
    # apply even after another runner built the config's 'visualizer' (e.g. a second call in-process)
    cfg.visualizer["name"] = f"show_dir:{osp.abspath(show_dir)}"


def file_painted(show_dir: str, set_name: str) -> None:
    """Move the images just painted into ``show_dir/<set name>/``: the hook names them by image file
    name and iteration (0 in a test), so the next set's images would overwrite them."""
    import shutil
    from pathlib import Path

    dest = Path(show_dir) / set_name
    dest.mkdir(parents=True, exist_ok=True)
    for png in (Path(show_dir) / "vis_data" / "vis_image").glob("*.png"):  # mmengine's LocalVisBackend layout
        shutil.move(str(png), dest / png.name)


def _write(results: Dict[str, Dict[str, float]], work_dir: str) -> None:
    import pandas as pd

    frame = pd.DataFrame.from_dict(results, orient="index")
    frame.index.name = "dataset"
    frame.to_csv(osp.join(work_dir, "eval_results.csv"))
    with open(osp.join(work_dir, "eval_results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    import pandas as pd

    frame = pd.DataFrame.from_dict(results, orient="index")
    frame.index.name = "dataset"
    preferred = [c for c in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "aAcc", "align_cos", "align_margin") if c in frame]
    rest = [c for c in frame.columns if c not in preferred and not c.startswith("IoU.")]
    return frame[preferred + rest].to_markdown(floatfmt=".2f") if _has_tabulate() else frame.to_string()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))  # as mmseg's tools/test.py, for --launcher
    results = evaluate_config(
        args.config, args.checkpoint, args.datasets, args.work_dir, args.cfg_options, args.seed,
        out=args.out, show_dir=args.show_dir, launcher=args.launcher, data_root=args.data_root,
    )
    from mmengine.dist import is_main_process

    from ovbench.train import end_distributed

    if is_main_process():
        print(format_table(results))
    end_distributed()
    return 0
