"""OFT, orthogonal fine-tuning (Qiu et al., NeurIPS 2023), in HuggingFace PEFT's parametrisation.

Per adapted linear layer: ``b = d_in / q`` skew blocks, each stored as its
upper triangle (``q(q-1)/2`` values, so stored = free), zero at init.
``Q = M - M^T`` (``M`` upper-triangular), ``R = (I - Q)(I + Q)^-1`` block-wise,
and the layer computes ``base(x @ blockdiag(R))``, i.e. ``W_eff = W R^T``
(R on the input side). With the same block size and the same stored values
this equals PEFT's ``use_cayley_neumann=False`` output; PEFT's Neumann mode
sums ``I + 2Q + 2Q^2 + ...``, the series of ``(I + Q)(I - Q)^-1`` = ``R^T``,
so it matches ours with the values negated. ovbench's ``cayley='neumann'``
approximates the exact ``R`` (not its transpose).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.peft.config import PeftConfigError
from ovbench.peft.base import PeftConfig, PeftMethod, register_peft
from ovbench.peft.orth import block_rotate, cayley, skew_from_upper, weight_times_blockdiag


def check_block_size(q: int, width: int, key: str, encoder: str) -> int:
    if not isinstance(q, int) or q < 1 or width % q:
        divisors = [k for k in range(2, width + 1) if width % k == 0 and k & (k - 1) == 0]
        raise PeftConfigError(
            f"peft.{key}: block size {q!r} does not divide the {encoder} width {width}; "
            f"expected a positive divisor of {width} (e.g. {divisors})"
        )
    return width // q


class OftMethod(PeftMethod):
    def __init__(self, cfg: "OftConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)
        self.oft_r = nn.ParameterDict()
        q = cfg.block_size
        for (enc, i), site in self.site_keys():
            d_in = self.site_dims((enc, i), site)[0]
            b = check_block_size(q, d_in, "block_size (oft)", f"{enc} {site}")
            self.oft_r[f"{enc}_{i}_{site}"] = nn.Parameter(torch.zeros(b, q * (q - 1) // 2))

    def rotation(self, key: Tuple[str, int], site: str) -> torch.Tensor:
        s = skew_from_upper(self.oft_r[f"{key[0]}_{key[1]}_{site}"], self.cfg.block_size)
        return cayley(s, self.cfg.cayley, self.cfg.neumann_terms)

    def site_forward(self, key, site, x, w, b):
        return F.linear(block_rotate(x, self.rotation(key, site)), w, b)

    def merged_weight(self, key, site, w, b):
        return weight_times_blockdiag(w, self.rotation(key, site).transpose(-1, -2)), b


@register_peft("oft")
@dataclasses.dataclass
class OftConfig(PeftConfig):
    block_size: int = 32
    cayley: str = "exact"
    neumann_terms: int = 5
    method_cls = OftMethod

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cayley not in ("exact", "neumann"):
            raise PeftConfigError(f"peft.cayley (oft): expected 'exact' or 'neumann', got {self.cayley!r}")
