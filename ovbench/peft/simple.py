"""Whole-tensor methods: ``frozen``, ``full`` and CAT-Seg's ``attention`` tuning."""
from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.peft.base import ATTN_SITES, PeftConfig, PeftMethod, register_peft


class FrozenMethod(PeftMethod):
    """Nothing trains inside CLIP (the zero-shot / frozen baseline)."""

    uses_attention = False


@register_peft("frozen")
@dataclasses.dataclass
class FrozenConfig(PeftConfig):
    encoders: object = "both"
    sites: object = ()
    method_cls = FrozenMethod


class FullMethod(PeftMethod):
    """Every parameter of the chosen towers trains (including embeddings, LayerNorms and projections)."""

    uses_attention = False

    def __init__(self, cfg: PeftConfig, model: nn.Module) -> None:
        super().__init__(cfg, model)
        from ovbench.peft.base import encoder_of_param

        for name, p in model.named_parameters():
            if name.startswith("peft_method."):
                continue
            if encoder_of_param(name) in cfg.encoders:
                p.requires_grad_(True)


@register_peft("full")
@dataclasses.dataclass
class FullConfig(PeftConfig):
    sites: object = ()
    method_cls = FullMethod


class AttentionTuningMethod(PeftMethod):
    """CAT-Seg's ``attention`` mode (Cho et al., CVPR 2024): q and v projections + position embeddings.

    open_clip packs q, k and v into one ``in_proj_weight``, so the trainable
    q/v weights are stored as zero-initialised deltas (``W + dW``): exactly
    ``d*d + d`` trainable values per projection, k untouched, merge = addition.
    """

    def __init__(self, cfg: "AttentionConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)
        self.index: Dict[Tuple[str, int], int] = {}
        for enc, idx in self.targets.items():
            d = self.towers[enc].width
            n = len(idx)
            self.register_parameter(f"{enc}_dw", nn.Parameter(torch.zeros(n, len(cfg.sites), d, d)))
            self.register_parameter(f"{enc}_db", nn.Parameter(torch.zeros(n, len(cfg.sites), d)))
            for j, i in enumerate(idx):
                self.index[(enc, i)] = j
            if cfg.position_embeddings and self.towers[enc].pos_embed is not None:
                self.towers[enc].pos_embed.requires_grad_(True)

    def _delta(self, key, site):
        j, s = self.index[key], self.cfg.sites.index(site)
        return getattr(self, f"{key[0]}_dw")[j, s], getattr(self, f"{key[0]}_db")[j, s]

    def site_forward(self, key, site, x, w, b):
        dw, db = self._delta(key, site)
        return F.linear(x, w + dw, db if b is None else b + db)

    def merged_weight(self, key, site, w, b):
        if site not in self.cfg.sites:
            return w, b
        dw, db = self._delta(key, site)
        return w + dw, (None if b is None else b + db)


@register_peft("attention")
@dataclasses.dataclass
class AttentionConfig(PeftConfig):
    sites: object = ("q", "v")
    position_embeddings: bool = True
    allowed_sites = ATTN_SITES
    method_cls = AttentionTuningMethod
