"""LoRA (Hu et al., ICLR 2022): ``W + (alpha / r) B A`` with ``B = 0`` at init.

Sites: attention q/k/v/out (slices of open_clip's packed ``in_proj``) and the
MLP's ``c_fc``/``c_proj`` (forward hooks). The low-rank path runs on the
activations (``x A^T B^T``), as in HuggingFace PEFT; merge folds ``B A`` in.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.peft.base import PeftConfig, PeftMethod, register_peft


class LoraMethod(PeftMethod):
    def __init__(self, cfg: "LoraConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)
        if cfg.r < 1:
            raise ValueError(f"peft.r (lora): rank must be a positive integer, got {cfg.r}")
        self.scale = cfg.alpha / cfg.r
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.lora_a = nn.ParameterDict()
        self.lora_b = nn.ParameterDict()
        for enc, idx in self.targets.items():
            d = self.towers[enc].width
            for i in idx:
                blk = self.towers[enc].blocks[i]
                for site in cfg.sites:
                    lin = self._mlp_linear(blk, site)
                    d_in, d_out = (lin.in_features, lin.out_features) if lin is not None else (d, d)
                    a = torch.empty(cfg.r, d_in)
                    nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # HF PEFT's default init of A
                    self.lora_a[self._name(enc, i, site)] = nn.Parameter(a)
                    self.lora_b[self._name(enc, i, site)] = nn.Parameter(torch.zeros(d_out, cfg.r))

    @staticmethod
    def _name(enc: str, i: int, site: str) -> str:
        return f"{enc}_{i}_{site}"

    @staticmethod
    def _mlp_linear(blk: nn.Module, site: str):
        if site == "mlp_fc":
            return blk.mlp.c_fc
        if site == "mlp_proj":
            return blk.mlp.c_proj
        return None

    def _delta(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(self.drop(x), self.lora_a[name]), self.lora_b[name]) * self.scale

    def site_forward(self, key, site, x, w, b):
        return F.linear(x, w, b) + self._delta(self._name(key[0], key[1], site), x)

    def install(self) -> None:
        super().install()
        for enc, idx in self.targets.items():
            for i in idx:
                blk = self.towers[enc].blocks[i]
                for site in self.cfg.sites:
                    lin = self._mlp_linear(blk, site)
                    if lin is not None:
                        name = self._name(enc, i, site)
                        self._handles.append(
                            lin.register_forward_hook(lambda m, a, out, name=name: out + self._delta(name, a[0]))
                        )

    def merged_weight(self, key, site, w, b):
        name = self._name(key[0], key[1], site)
        if name not in self.lora_a:
            return w, b
        return w + self.scale * self.lora_b[name] @ self.lora_a[name], b

    @torch.no_grad()
    def merge(self) -> None:
        for enc, idx in self.targets.items():
            for i in idx:
                for site in self.cfg.sites:
                    lin = self._mlp_linear(self.towers[enc].blocks[i], site)
                    if lin is not None:
                        lin.weight.copy_(self.merged_weight((enc, i), site, lin.weight, None)[0])
        super().merge()


@register_peft("lora")
@dataclasses.dataclass
class LoraConfig(PeftConfig):
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    method_cls = LoraMethod
