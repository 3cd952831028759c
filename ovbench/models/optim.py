"""An optimizer constructor that lets each PEFT method set its CLIP learning rate.

mmengine's :class:`~mmengine.optim.DefaultOptimWrapperConstructor` gives parameter groups their rate
from ``paramwise_cfg.custom_keys`` (e.g. ``{'backbone.clip': dict(lr_mult=0.1)}``), a property of the
config file. Methods differ in how many CLIP weights they train, and one CLIP rate does not suit them
all: on the embedded benchmark full fine-tuning stalls on two seeds of three at the rate where every
PEFT method trains best (reports/recipe_v3, recipe_v3_full). A study that sweeps the method as a
whole ``model.clip.peft`` value replaces only the PEFT config, so the method's rate has to travel in
it: ``peft=dict(type='full', lr_mult=0.03)``.

This constructor finds every PEFT method in the model (:func:`ovbench.peft.get_peft_method`, stored
as ``<clip>.peft_method``) whose config sets ``lr_mult`` and sets that multiplier for every parameter
under its CLIP (``custom_keys[<clip prefix>]``), keeping the key's other options (``decay_mult``...).
A method without ``lr_mult`` leaves the config's ``paramwise_cfg`` as it is. Everything else is
mmengine's default constructor.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional

import torch.nn as nn
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ovbench.peft.base import PeftMethod

PEFT_MODULE = "peft_method"  # where apply_peft stores the method on its CLIP


def peft_lr_mults(model: nn.Module) -> Dict[str, float]:
    """``{CLIP module prefix: lr_mult}`` of every PEFT method in ``model`` whose config sets one."""
    out: Dict[str, float] = {}
    for name, module in model.named_modules():
        if isinstance(module, PeftMethod) and getattr(module.cfg, "lr_mult", None) is not None:
            clip_prefix = name[: -len(PEFT_MODULE)].rstrip(".") if name.endswith(PEFT_MODULE) else name
            out[clip_prefix] = float(module.cfg.lr_mult)
    return out


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PeftOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`DefaultOptimWrapperConstructor` with each PEFT method's ``lr_mult`` as a custom key of
    its CLIP's parameters (module docstring)."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.config_paramwise_cfg = copy.deepcopy(self.paramwise_cfg)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        inner = model.module if hasattr(model, "module") else model
        paramwise = copy.deepcopy(self.config_paramwise_cfg)
        custom_keys = dict(paramwise.get("custom_keys") or {})
        for prefix, mult in peft_lr_mults(inner).items():
            custom_keys[prefix] = dict(custom_keys.get(prefix) or {}, lr_mult=mult)
        if custom_keys:
            paramwise["custom_keys"] = custom_keys
        self.paramwise_cfg = paramwise
        return super().__call__(model)
