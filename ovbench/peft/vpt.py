"""VPT, visual prompt tuning (Jia et al., ECCV 2022), shallow or deep, image encoder only.

``n_tokens`` learnable tokens are inserted after the class token at the first
adapted block (shallow: carried through the following blocks; deep: replaced
by fresh ones at every adapted block) and removed again after each block, so
every block outputs the plain ``[cls, patches]`` sequence (intermediate
features and dense outputs keep their grid).

Identity at init: plain VPT changes the output as soon as tokens are inserted
(they enter every softmax). ovbench gates them (``gate=True``, default): the
real tokens' attention weights on the prompt keys are multiplied by a
per-block scalar initialised to 0 before renormalisation (zero-init gating
as in LLaMA-Adapter, Zhang et al. 2023), so training starts from the frozen
model and the gate learns how much the prompts count. ``gate=False`` is
Jia et al.'s original. Prompts cannot be folded into weights: ``merge``
leaves VPT in place.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import torch
from torch import nn

from ovbench.peft.config import PeftConfigError
from ovbench.peft.base import PeftConfig, PeftMethod, register_peft


class VptMethod(PeftMethod):
    uses_attention = False  # no projection is adapted; the gated blocks are patched by install

    def __init__(self, cfg: "VptConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)
        if set(self.targets) != {"image"}:
            raise PeftConfigError("peft.encoders (vpt): VPT adapts the image encoder only; set encoders='image'")
        if cfg.n_tokens < 1:
            raise PeftConfigError(f"peft.n_tokens (vpt): expected a positive integer, got {cfg.n_tokens}")
        tower = self.towers["image"]
        idx = self.targets["image"]
        self.first = idx[0]
        self.deep_idx = idx if cfg.deep else [idx[0]]
        d = tower.width
        val = math.sqrt(6.0 / float(3 * 16 * 16 + d))  # Jia et al.'s uniform init (patch 16)
        self.image_prompts = nn.Parameter(torch.empty(len(self.deep_idx), cfg.n_tokens, d).uniform_(-val, val))
        self.image_gates = nn.Parameter(torch.zeros(tower.layers - self.first)) if cfg.gate else None
        self._stash: Optional[torch.Tensor] = None

    def __getstate__(self):  # deepcopy / pickle: the stash holds a non-leaf tensor
        state = self.__dict__.copy()
        state["_stash"] = None
        return state

    def install(self) -> None:
        tower = self.towers["image"]
        bf = getattr(tower.transformer, "batch_first", True)
        for i in range(self.first, tower.layers):
            blk = tower.blocks[i]
            if self.image_gates is not None:  # ungated VPT keeps open_clip's own attention
                self.patch_attention("image", i)
            self._handles.append(blk.register_forward_pre_hook(functools.partial(self._insert, i, bf)))
            self._handles.append(blk.register_forward_hook(functools.partial(self._strip, bf)))

    def key_weight(self, key, n_keys, like):
        """The gate on the prompt keys (1 on the class and patch keys)."""
        n = self.cfg.n_tokens
        g = self.image_gates[key[1] - self.first]
        weight = torch.ones(n_keys, dtype=like.dtype, device=like.device)
        return torch.cat([weight[:1], g.expand(n).to(like.dtype), weight[1 + n:]])

    def _insert(self, i, bf, module, args):
        x = args[0] if bf else args[0].transpose(0, 1)
        if i in self.deep_idx:
            p = self.image_prompts[self.deep_idx.index(i)].to(x.dtype).expand(x.shape[0], -1, -1)
        else:
            p = self._stash
        x = torch.cat([x[:, :1], p, x[:, 1:]], dim=1)
        return (x if bf else x.transpose(0, 1),) + tuple(args[1:])

    def _strip(self, bf, module, args, out):
        x = out if bf else out.transpose(0, 1)
        n = self.cfg.n_tokens
        self._stash = x[:, 1:1 + n]
        x = torch.cat([x[:, :1], x[:, 1 + n:]], dim=1)
        return x if bf else x.transpose(0, 1)

    def merge(self) -> None:  # prompts do not fold into weights
        return None


@register_peft("vpt")
@dataclasses.dataclass
class VptConfig(PeftConfig):
    encoders: object = "image"
    sites: object = ()
    n_tokens: int = 10
    deep: bool = True
    gate: bool = True
    method_cls = VptMethod
