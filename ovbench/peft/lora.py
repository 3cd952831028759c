"""LoRA (Hu et al., ICLR 2022): ``W + (alpha / r) B A`` with ``B = 0`` at init.

Sites: attention q/k/v/out (slices of open_clip's packed ``in_proj``) and the
MLP's ``c_fc``/``c_proj`` (forward hooks). The low-rank path runs on the
activations (``x A^T B^T``), as in HuggingFace PEFT; merge folds ``B A`` in.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.peft.config import PeftConfigError
from ovbench.peft.base import PeftConfig, PeftMethod, register_peft


class LoraMethod(PeftMethod):
    def __init__(self, cfg: "LoraConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)
        if cfg.r < 1:
            raise PeftConfigError(f"peft.r (lora): rank must be a positive integer, got {cfg.r}")
        self.scale = cfg.alpha / cfg.r
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.lora_a = nn.ParameterDict()
        self.lora_b = nn.ParameterDict()
        for key, site in self.site_keys():
            d_in, d_out = self.site_dims(key, site)
            a = torch.empty(cfg.r, d_in)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # HF PEFT's default init of A
            self.lora_a[self._name(key, site)] = nn.Parameter(a)
            self.lora_b[self._name(key, site)] = nn.Parameter(torch.zeros(d_out, cfg.r))

    @staticmethod
    def _name(key: Tuple[str, int], site: str) -> str:
        return f"{key[0]}_{key[1]}_{site}"

    def site_forward(self, key, site, x, w, b):
        name = self._name(key, site)
        return F.linear(x, w, b) + F.linear(F.linear(self.drop(x), self.lora_a[name]), self.lora_b[name]) * self.scale

    def merged_weight(self, key, site, w, b):
        name = self._name(key, site)
        return w + self.scale * self.lora_b[name] @ self.lora_a[name], b


@register_peft("lora")
@dataclasses.dataclass
class LoraConfig(PeftConfig):
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    method_cls = LoraMethod
