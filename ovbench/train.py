"""Train from an mmengine config: ``python -m ovbench.train CONFIG`` / ``ovbench train CONFIG``.

Mirrors MMSegmentation's ``tools/train.py`` (work dir, ``--cfg-options``,
``--resume``, ``--amp``), with two additions: ``--seed`` (every run takes one;
the same seed gives the same numbers on the same machine) and the ovbench
import, which applies the stack shims and registers ovbench's modules.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import Any, Dict, List, Optional

import ovbench  # noqa: F401  (shims + registration first)
from mmengine.config import Config, DictAction

from ovbench.argtypes import seed as seed_arg
from ovbench.errors import InputError


class CfgOptions(DictAction):
    """mmengine's ``--cfg-options KEY=VALUE ...`` (mmseg's tools' meaning), with a usage error instead of
    a traceback for an item that is not ``KEY=VALUE`` (mmengine's own action raises ValueError)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values if isinstance(values, list) else [values]:
            key, sep, _ = str(item).partition("=")
            if not sep or not key:
                parser.error(f"{option_string}: expected KEY=VALUE (e.g. train_cfg.max_iters=10), got {item!r}")
        super().__call__(parser, namespace, values, option_string)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="mmengine config file (.py)")
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default: ./work_dirs/<config name>)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume training: from the latest checkpoint in the work dir, or from the given checkpoint",
    )
    parser.add_argument("--amp", action="store_true", help="automatic mixed precision")
    parser.add_argument("--data-root", help="where the datasets are: a config's data/<folder> becomes DIR/<folder> "
                        "(default: $OVBENCH_DATA_ROOT, else ./data; docs/datasets.md)")
    parser.add_argument("--seed", type=seed_arg, default=None, help="random seed (default: the config's, else 0)")
    parser.add_argument(
        "--deterministic", action="store_true", help="also make cuDNN / torch algorithms deterministic"
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=CfgOptions,
        help="override config keys, e.g. model.backbone.depth=18 'train_cfg.max_iters=10'",
    )
    parser.add_argument(
        "--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none", help="job launcher"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def load_config(
    config: str,
    work_dir: Optional[str] = None,
    cfg_options: Optional[Dict[str, Any]] = None,
    seed: Optional[int] = None,
    resume: Optional[str] = None,
    amp: bool = False,
    launcher: str = "none",
    deterministic: bool = False,
) -> Config:
    """Build the final config exactly as ``tools/train.py`` would, plus seed handling."""
    cfg = read_config(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(config))[0])
    randomness = dict(cfg.get("randomness") or {})
    if seed is not None:
        randomness["seed"] = seed
    randomness.setdefault("seed", 0)
    if deterministic:
        randomness["deterministic"] = True
    cfg.randomness = randomness
    if amp:
        optim_wrapper = cfg.optim_wrapper.get("type", "OptimWrapper")
        if optim_wrapper != "AmpOptimWrapper":
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.loss_scale = "dynamic"
    if resume not in (None, "auto"):
        check_checkpoint(resume)
    if resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        cfg.resume = True
        cfg.load_from = resume
    if cfg.get("model") is not None:
        _stringify_non_finite(cfg.model)
    if launcher != "none":
        _cpu_distributed(cfg)
    check_peft_lr_mult(cfg, config)
    return cfg


def read_config(config: str) -> Config:
    """The mmengine config at ``config``, or an :class:`InputError` naming the file (missing, not a config,
    or a config whose Python fails): what ``train``, ``test`` and ``params`` read a CONFIG with (an ablation
    file's base_config is checked by its own loader, which lists every problem of the file)."""
    if not osp.isfile(config):
        raise InputError(f"config file not found: {config}; expected an mmengine config (.py, .yaml or .json)")
    try:
        return Config.fromfile(config)
    except (Exception, SystemExit) as e:  # a syntax error, a wrong suffix, a missing _base_, even exit()
        first = (str(e).strip().splitlines() or [""])[0]
        raise InputError(f"{config}: config cannot be loaded: {type(e).__name__}: {first}; expected an mmengine "
                         "config (.py, .yaml or .json)") from e


class CheckpointError(InputError):
    """A checkpoint that is missing, or a file that is not a checkpoint ovbench can load safely."""


def check_checkpoint(path: str) -> None:
    """Load the checkpoint as the runner will (torch's safe loader with mmengine's types allowed, see
    ``ovbench.compat``) before the runner creates its work dir, so a wrong file fails with a clear error and
    nothing written. It costs a second read of the file. There is no unsafe fallback: unpickling an arbitrary
    file can run code, so the error never suggests one. A URL (``https://...``, ``s3://...``) is left to
    mmengine's file backends, which fetch it when the runner loads it."""
    if "://" in path:
        return
    if not osp.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}; expected a .pth file written by `ovbench train`")
    import warnings

    from mmengine.runner.checkpoint import CheckpointLoader

    try:
        with warnings.catch_warnings():  # torch's unpickler warnings are noise next to the error below
            warnings.simplefilter("ignore")
            CheckpointLoader.load_checkpoint(path, map_location="cpu", logger="silent")
    except Exception as e:  # a text file, a truncated file, a pickle of arbitrary objects, ...
        raise CheckpointError(f"{path} is not a checkpoint that can be loaded safely ({type(e).__name__}); "
                              "expected a .pth file written by `ovbench train` (mmengine)") from None


def point_training_data(cfg: Config, root: Optional[str] = None) -> None:
    """Point the config's datasets at the data root (``--data-root``, else ``$OVBENCH_DATA_ROOT``, else
    ./data; generated sets are made on first use) and check, before the runner is built, the sets
    training reads: the training set, and the validation set when the config has a validation loop."""
    from ovbench.data.check import check_datasets
    from ovbench.data.roots import data_root, point_config

    point_config(cfg, data_root(root))
    keys = ["train_dataloader"] + (["val_dataloader"] if cfg.get("val_cfg") else [])
    check_datasets({key: cfg[key]["dataset"] for key in keys
                    if cfg.get(key) and cfg[key].get("dataset") is not None})


def check_model_builds(cfg: Config, config: str) -> None:
    """Build the config's CLIP(s) with their PEFT methods on the meta device (shapes only) before the runner,
    which creates its work dir and log before it builds the model: a PEFT value that does not fit the model
    then fails with nothing written (:func:`ovbench.models.clip.meta.clip_build_problems`)."""
    from ovbench.models.clip.meta import clip_build_problems

    problems = clip_build_problems(cfg.to_dict().get("model"))
    if problems:
        raise InputError(f"{config}: the model cannot be built: " + "; ".join(problems))


def _peft_lr_mult_keys(node: Any, path: str = "model") -> List[str]:
    """Dotted keys of every PEFT config under ``node`` that sets ``lr_mult``."""
    found: List[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "peft" and isinstance(value, dict) and value.get("lr_mult") is not None:
                found.append(f"{path}.peft.lr_mult")
            found.extend(_peft_lr_mult_keys(value, f"{path}.{key}"))
    return found


def check_peft_lr_mult(cfg: Config, config: str = "the config") -> None:
    """Refuse a PEFT ``lr_mult`` that the optimizer would ignore: only
    :class:`ovbench.models.optim.PeftOptimWrapperConstructor` (or a subclass) applies it, and
    under mmengine's default constructor the CLIP would train at the config's rate, silently."""
    keys = _peft_lr_mult_keys(cfg.get("model"))
    if not keys:
        return
    from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

    from ovbench.models.optim import PeftOptimWrapperConstructor

    name = (cfg.get("optim_wrapper") or {}).get("constructor", "DefaultOptimWrapperConstructor")
    cls = OPTIM_WRAPPER_CONSTRUCTORS.get(name) if isinstance(name, str) else name
    if not (isinstance(cls, type) and issubclass(cls, PeftOptimWrapperConstructor)):
        raise InputError(f"{config}: {keys[0]} is set, but optim_wrapper.constructor is {name!r}, which "
                         "ignores it; expected optim_wrapper.constructor='PeftOptimWrapperConstructor'")


def _cpu_distributed(cfg: Config) -> None:
    """Distributed training without a GPU: gloo instead of NCCL, and a DDP wrapper without
    ``device_ids`` (mmengine's default passes ``[LOCAL_RANK]``, which DDP refuses for CPU modules)."""
    import torch

    if torch.cuda.is_available():
        return
    env_cfg = dict(cfg.get("env_cfg") or {})
    env_cfg["dist_cfg"] = dict(env_cfg.get("dist_cfg") or {}, backend="gloo")
    cfg.env_cfg = env_cfg
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                                     find_unused_parameters=bool(cfg.get("find_unused_parameters", False)))


def _stringify_non_finite(node: Any) -> None:
    """Replace ``inf``/``nan`` floats under ``node`` by ``'inf'``/``'-inf'``/``'nan'`` in place.

    mmengine dumps a config as Python source through ``repr``, and
    ``repr(float('inf'))`` is ``inf``, a name the dumped file cannot evaluate:
    ``mmseg.apis.init_model(work_dir/config.py, ...)`` would then fail on, e.g.,
    H-CLIP's ``orth_lambda=float('inf')`` (hard Cayley). The strings round-trip,
    and the consumers parse them with ``float()``.
    """
    import math

    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, float) and not math.isfinite(value):
            node[key] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        elif isinstance(value, (dict, list)):
            _stringify_non_finite(value)


def train(cfg: Config):
    """Train with mmengine's Runner (the one training path) and return the runner."""
    from mmengine.runner import Runner

    if "runner_type" in cfg:
        from mmengine.registry import RUNNERS

        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def end_distributed(wait_for_peers: bool = True) -> None:
    """Leave the process group (if a launcher started one) before the interpreter exits.

    Exiting with a live gloo group can abort a rank in its C++ teardown ("terminate called
    without an active exception", exit -6) after all the work succeeded; torch's documented
    way out is ``destroy_process_group``. With ``wait_for_peers`` (a rank whose work succeeded)
    every rank first meets at a barrier, so none leaves while rank 0 still writes its results:
    torchrun ends the surviving ranks as soon as one exits with a failure, and an early rank's
    teardown must not cost rank 0 its output. A rank that failed skips the barrier (its peers,
    maybe inside a training collective, would never meet it); torchrun then ends them.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


def run(args: argparse.Namespace) -> int:
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    cfg = load_config(
        args.config,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        seed=args.seed,
        resume=args.resume,
        amp=args.amp,
        launcher=args.launcher,
        deterministic=args.deterministic,
    )
    check_model_builds(cfg, args.config)
    point_training_data(cfg, args.data_root)
    train(cfg)
    end_distributed()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ovbench.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
