"""Where a config's datasets live: one data root for every set, generated sets made on first use.

Every shipped config writes a dataset's ``data_root`` as ``data/<folder>``
(``data/ADE20K_2021_17_01``, ``data/toy-v2``, ``data/synth/synth_large``). The
``data/`` prefix stands for the *data root*: ``--data-root DIR``, else
``$OVBENCH_DATA_ROOT``, else ``./data``. So one config runs on any machine, and
``ovbench test`` and ``ovbench run`` find the same files.

Two folders are generated instead of downloaded, when they are not under the
data root (the synthetic sets of docs/synthetic_benchmark.md):

- ``toy-v<TOY_VERSION>``: the 3-class toy set (:mod:`ovbench.data.toy`), written
  atomically into the data root (a new generator version gets a new folder);
- ``synth``: the embedded benchmark, in ovbench's cache
  (:func:`ovbench.data.synth.writers.ensure_synth_benchmark`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from ovbench.data.toy import TOY_VERSION, write_toy_dataset

DATA_ROOT_ENV = "OVBENCH_DATA_ROOT"
#: the first component of a config's data_root that stands for the data root
CONFIG_PREFIX = "data"
#: the dataloaders whose dataset a data root applies to (besides ``eval_datasets``)
LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def data_root(explicit: Optional[str] = None) -> Path:
    """The data root: ``explicit`` (``--data-root``), else ``$OVBENCH_DATA_ROOT``, else ``./data``."""
    return Path(explicit or os.environ.get(DATA_ROOT_ENV) or CONFIG_PREFIX).resolve()


def _write_atomically(target: Path, write: Callable[[Path], Any]) -> Path:
    """Write a generated set into a temporary sibling, then rename: two runs starting together never
    read half a set (the loser of the race drops its identical copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _toy(folder: Path, generate: bool) -> Path:
    if generate and not (folder / "vocabulary.json").is_file():
        _write_atomically(folder, write_toy_dataset)
    return folder


def _synth(folder: Path, generate: bool) -> Path:
    if folder.is_dir():  # the user's own copy (`ovbench data synth --out DATA_ROOT/synth`)
        return folder
    from ovbench.data.synth import writers

    if generate:
        return Path(writers.ensure_synth_benchmark())
    return writers.default_cache_root() / writers.cache_key(0, 64, 1.0)


#: folder under the data root -> (folder, generate?) -> where the set is
GENERATED: Dict[str, Callable[[Path, bool], Path]] = {f"toy-v{TOY_VERSION}": _toy, "synth": _synth}


def resolve_root(config_root: str, root: Path, generate: bool = True) -> Path:
    """Where a config's ``data_root`` points under the data root ``root`` (absolute paths and paths that
    do not start with ``data/`` are taken as written). A generated folder is made unless ``generate``
    is False (a dry run), which returns where it would be."""
    parts = PurePosixPath(str(config_root)).parts
    if not parts or parts[0] != CONFIG_PREFIX:
        return Path(config_root).resolve()
    rest = parts[1:]
    if rest and rest[0] in GENERATED:
        return GENERATED[rest[0]](root / rest[0], generate).joinpath(*rest[1:])
    return root.joinpath(*rest)


def is_generated(path: Path, root: Path) -> bool:
    """Whether a resolved data root is one ovbench generates (so its absence is not a missing download)."""
    from ovbench.data.synth.writers import default_cache_root

    bases = [root / name for name in GENERATED] + [default_cache_root()]
    return any(path == b or b in path.parents for b in bases)


def datasets_of(cfg: Any) -> Iterator[Tuple[str, Any]]:
    """(where, dataset config) of every dataset a config declares: its loaders' and ``eval_datasets``'."""
    for key in LOADERS:
        loader = cfg.get(key)
        if loader and loader.get("dataset") is not None:
            yield key, loader["dataset"]
    for name, dataset in (cfg.get("eval_datasets") or {}).items():
        yield f"eval_datasets.{name}", dataset


def dataset_tree(name: str, dataset: Any) -> Iterator[Tuple[str, Any, bool]]:
    """``(where, config, is_wrapper)`` of a dataset config and of every dataset it wraps (mmengine's
    ``ConcatDataset``'s ``datasets``, ``RepeatDataset``'s ``dataset``, ...), depth first, each named by
    where it sits: ``train.dataset.datasets[1]``."""
    inner = [(f"{name}.datasets[{i}]", d) for i, d in enumerate(dataset.get("datasets") or [])]
    if hasattr(dataset.get("dataset"), "get"):
        inner.append((f"{name}.dataset", dataset["dataset"]))
    yield name, dataset, bool(inner)
    for inner_name, inner_cfg in inner:
        yield from dataset_tree(inner_name, inner_cfg)


def point_dataset(dataset: Any, root: Path, generate: bool = True) -> None:
    """Rewrite a dataset config's ``data_root`` (and those of the datasets a wrapper wraps)."""
    for _, node, _ in dataset_tree("", dataset):
        if node.get("data_root") is not None:
            node["data_root"] = str(resolve_root(node["data_root"], root, generate))


def point_config(cfg: Any, root: Path, generate: bool = True) -> None:
    """Point every dataset of a config at the data root ``root`` (train, val, test, ``eval_datasets``)."""
    for _, dataset in datasets_of(cfg):
        point_dataset(dataset, root, generate)
