"""SIMO, strategic image-mask optimisation (FISA, Chng et al., arXiv 2409.16278 v2).

FISA trains only the attention *query* projections of CLIP's image encoder,
separately selectable for the image tokens and for the mask tokens (the
arXiv v1, "SMART", calls it query projection tuning). Queries decide where a
token looks, not what it reads, so the values -- and CLIP's joint space --
stay frozen.

ovbench's reading (the paper's code was not public):

* ``image_tokens=True``: a zero-initialised delta ``(dW, db)`` on ``W_q, b_q``
  of each chosen block, used for the image tokens (class + patches) through
  :meth:`site_forward` -- CAT-Seg's ``attention`` tuning restricted to
  ``q`` (this class reuses :class:`AttentionTuningMethod`);
* ``mask_tokens=True``: a *separate* zero-initialised delta used only for the
  mask tokens' queries (:meth:`SimoMethod.mask_query`, called by
  :func:`ovbench.models.clip.mask_tokens.encode_with_mask_tokens`), as
  MasQCLIP (Xu et al., ICCV 2023) trains new query projections for its mask
  tokens while the image path stays as it was;
* the mask tokens' query projection is
  ``W_q + [dW_image if share] + [dW_mask if mask_tokens]``: with
  ``share=False`` (default) the two paths are independent (mask tokens use the
  frozen ``W_q`` when ``mask_tokens=False``); ``share=True`` starts the mask
  tokens from the image tokens' adapted projection.

Each delta stores ``blocks * (d*d + d)`` values. Merge folds the image delta
into ``in_proj`` and is refused (``RuntimeError``) whenever the mask tokens'
projection would differ from the folded one (``mask_tokens=True``, or
``share=False``), because after a merge the frozen ``W_q`` they need is gone.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovbench.peft.config import PeftConfigError, PeftConfigTypeError
from ovbench.peft.base import PeftConfig, register_peft
from ovbench.peft.simple import AttentionTuningMethod


class SimoMethod(AttentionTuningMethod):
    """Query-only deltas for the image tokens and, separately, for the mask tokens."""

    def __init__(self, cfg: "SimoConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)  # image_dw [n, 1, d, d], image_db [n, 1, d]
        if not cfg.image_tokens:
            del self.image_dw, self.image_db
        self.mask_index = dict(self.index)
        if cfg.mask_tokens:
            n, d = len(self.targets["image"]), self.towers["image"].width
            self.image_mask_dw = nn.Parameter(torch.zeros(n, d, d))
            self.image_mask_db = nn.Parameter(torch.zeros(n, d))

    def attention_sites(self) -> Tuple[str, ...]:
        # without an image delta the blocks keep open_clip's own attention (frozen speed)
        return ("q",) if self.cfg.image_tokens else ()

    def mask_query(self, key: Tuple[str, int], x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
        """Queries of the mask tokens ``x`` in block ``key = ('image', i)``; ``w, b``: the frozen ``W_q, b_q``."""
        j = self.mask_index.get(key)
        if j is None:  # block not adapted: frozen projection
            return F.linear(x, w, b)
        if self.cfg.share:
            w, b = w + self.image_dw[j, 0], (self.image_db[j, 0] if b is None else b + self.image_db[j, 0])
        if self.cfg.mask_tokens:
            w, b = w + self.image_mask_dw[j], (self.image_mask_db[j] if b is None else b + self.image_mask_db[j])
        return F.linear(x, w, b)

    @torch.no_grad()
    def merge(self) -> None:
        if self.cfg.mask_tokens or not self.cfg.share:
            raise RuntimeError(
                "peft (simo): merge folds the image tokens' query delta into in_proj, after which the mask tokens' "
                "own projection (frozen W_q, or W_q + their delta) is lost; merge only with mask_tokens=False and "
                "share=True, or keep the method unmerged (its cost is one d x d add per block)"
            )
        super().merge()


@register_peft("simo")
@dataclasses.dataclass
class SimoConfig(PeftConfig):
    """``dict(type='simo', blocks=None, image_tokens=True, mask_tokens=True, share=False)``; image encoder, q only."""

    encoders: object = "image"
    sites: object = ("q",)
    image_tokens: bool = True
    mask_tokens: bool = True
    share: bool = False
    allowed_sites = ("q",)
    position_embeddings = False  # read by AttentionTuningMethod; SIMO trains queries only
    method_cls = SimoMethod

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoders != ("image",):
            raise PeftConfigError(f"peft.encoders (simo): SIMO adapts the image encoder only; set encoders='image', "
                             f"got {list(self.encoders)}")
        if self.sites != ("q",):
            raise PeftConfigError(f"peft.sites (simo): SIMO tunes the query projections only; expected ('q',), "
                             f"got {list(self.sites)}")
        for name in ("image_tokens", "mask_tokens", "share"):
            if not isinstance(getattr(self, name), bool):
                raise PeftConfigTypeError(f"peft.{name} (simo): expected True or False, got {getattr(self, name)!r}")
        if not (self.image_tokens or self.mask_tokens):
            raise PeftConfigError("peft.image_tokens / peft.mask_tokens (simo): both are False, so nothing would train; "
                             "use type='frozen' for that")
        if self.share and not self.image_tokens:
            raise PeftConfigError("peft.share (simo): share=True gives the mask tokens the image tokens' delta, which "
                             "needs image_tokens=True")
