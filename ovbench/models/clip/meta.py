"""OVCLIP configs built without weights: the open_clip model and its PEFT method on PyTorch's ``meta``
device (shapes only: no download, no memory), so even ViT-L/14 builds in a fraction of a second.

Why: several commands need what a config's CLIP *is* without paying for it. ``ovbench params`` counts its
parameters; ``ovbench run`` checks, before a study starts, that every grid point's PEFT config fits its
CLIP, so that a block size that does not divide the width fails in the dry run, not in every trial; and
``ovbench train``/``test`` check the same before their runner writes its work dir.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, Iterator, List, Optional, Tuple

from torch import nn

from ovbench.errors import InputError


def clip_configs(node: Any, path: str = "model") -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``(dotted path, config)`` of every ``OVCLIP`` in a (model) config, depth first."""
    if isinstance(node, dict):
        if node.get("type") == "OVCLIP":
            yield path, node
        for key, value in node.items():
            yield from clip_configs(value, f"{path}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from clip_configs(value, f"{path}[{i}]")


def build_on_meta(model_name: Optional[str] = "ViT-B-16", peft: Any = None,
                  model_cfg: Optional[Dict[str, Any]] = None) -> nn.Module:
    """The open_clip model of an OVCLIP config (``model_name`` or ``model_cfg``, as OVCLIP builds it) with
    ``peft`` applied, on the meta device. Raises what OVCLIP's build would raise for a PEFT config that
    does not fit the model."""
    import logging

    import torch

    from ovbench.models.clip.wrapper import build_open_clip
    from ovbench.peft import apply_peft

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip's "No pretrained weights loaded": none are wanted here
    try:
        with torch.device("meta"):
            model = build_open_clip(model_name, None, model_cfg, device="meta")
            apply_peft(model, peft)
    finally:
        logging.disable(previous)
    return model


def build_clip_config_on_meta(clip_cfg: Dict[str, Any]) -> nn.Module:
    """:func:`build_on_meta` of an OVCLIP config, with OVCLIP's own defaults for the keys it leaves out."""
    from ovbench.models.clip.wrapper import OVCLIP

    defaults = inspect.signature(OVCLIP.__init__).parameters
    value = lambda key: clip_cfg.get(key, defaults[key].default)  # noqa: E731
    return build_on_meta(value("model_name"), value("peft"), value("model_cfg"))


def clip_build_problems(model_cfg: Any) -> List[str]:
    """One line per OVCLIP of a model config that cannot be built: a PEFT config that does not fit its model
    (:class:`ovbench.peft.PeftConfigError`, an input error) or an architecture open_clip does not know
    (its RuntimeError). Anything else is a bug, not the config's problem, and propagates."""
    problems = []
    for where, clip in clip_configs(model_cfg):
        try:
            build_clip_config_on_meta(clip)
        except (InputError, RuntimeError) as e:
            text = str(e).split("; available models")[0]  # open_clip appends every model it knows
            problems.append(f"{where}: {type(e).__name__}: {text}")
    return problems
