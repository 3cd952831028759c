"""OVCLIP configs built without weights: the open_clip model and its PEFT method on PyTorch's ``meta``
device (shapes only: no download, no memory), so even ViT-L/14 builds in a fraction of a second.

Why: two commands need what a config's CLIP *is* without paying for it. ``ovbench params`` counts its
parameters, and ``ovbench run`` checks, before a study starts, that every grid point's PEFT config fits
its CLIP, so that a block size that does not divide the width fails in the dry run, not in every trial.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

from torch import nn


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
