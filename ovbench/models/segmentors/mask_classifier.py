"""The CLIP mask classifier: one CLIP embedding per mask, cosine logits over the vocabulary.

Each mask gets a CLIP embedding -- ``'pooling'``: the dense CLIP features averaged
with the (soft) mask, area-resized to the patch grid, as weights; ``'tokens'``: one
mask token per proposal whose attention is restricted to its mask
(:func:`~ovbench.models.clip.mask_tokens.encode_with_mask_tokens`, MasQCLIP/SAN) --
and class logits ``logit_scale * cos(mask embedding, text embedding)`` (a class with
several prompts scores the max over them), optionally with SEVE's text injection in
the first visual blocks (FISA) and any PEFT method inside the CLIP.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from ovbench.models.heads.in_vocab_head import mask_pool
from ovbench.models.segmentors.base import OVSegmentorBase

MASK_EMBEDDINGS = ("pooling", "tokens")


class MaskScores(NamedTuple):
    """Class probabilities ``[B, N, C]`` of ``N`` masks, and the dense CLIP features they used (reusable
    for other masks of the same images in pooling mode; None when none were computed)."""

    probs: Tensor
    dense: Optional[Tensor]


class MaskCLIPClassifier(OVSegmentorBase):
    """Classifies masks with the CLIP (see the module docstring); subclasses decide where masks come from."""

    def _init_classifier(self, mask_embedding: str, mask_tokens: Optional[Dict[str, Any]],
                         seve: Optional[Dict[str, Any]], logit_scale: Optional[float],
                         learn_logit_scale: bool) -> None:
        """Build SEVE and the logit scale (called by the segmentor once its other modules exist, so that
        the random initialisation follows the same order as before the split)."""
        name = type(self).__name__
        if mask_embedding not in MASK_EMBEDDINGS:
            raise ValueError(f"{name}.mask_embedding: expected 'pooling' or 'tokens', got {mask_embedding!r}")
        self.mask_embedding = mask_embedding
        self.mask_tokens_cfg = dict(num_blocks=2, bias="hard", include_cls=True)
        self.mask_tokens_cfg.update(mask_tokens or {})
        self.seve = None
        if seve is not None:
            width = int(self.backbone.clip.visual.transformer.width)
            self.seve = MODELS.build({"type": "SEVE", "width": width, "text_dim": self.backbone.embed_dim, **dict(seve)})
            self.seve.attach(self.backbone)
        scale = float(self.backbone.clip.logit_scale.exp()) if logit_scale is None else float(logit_scale)
        if scale <= 0:
            raise ValueError(f"{name}.logit_scale: expected > 0, got {scale}")
        log_scale = torch.tensor(float(torch.tensor(scale).log()))
        if learn_logit_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale, persistent=False)

    @property
    def logit_scale(self) -> Tensor:
        return self.log_logit_scale.exp()

    def _text(self) -> Tuple[Tensor, List[slice]]:
        """A new forward of the CLIP starts: the vocabulary's text embeddings and prompt groups."""
        self.backbone.begin_forward()
        return self.encode_vocabulary()

    def _clip_embed(self, inputs: Tensor, text: Tensor, masks: Tensor,
                    dense: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``[B, N, D]`` mask embeddings of ``masks [B, N, H', W']`` (aligned with ``inputs``), and the
        dense features (reusable for other masks in pooling mode)."""
        if self.seve is not None:
            self.seve.set_text(text)
        try:
            if self.mask_embedding == "tokens":
                from ovbench.models.clip.mask_tokens import encode_with_mask_tokens

                out = encode_with_mask_tokens(self.backbone, inputs, masks, **self.mask_tokens_cfg)
                return out["mask_emb"], out["dense"]
            if dense is None:
                dense = self.backbone.encode_image(inputs)["dense"]
            return F.normalize(mask_pool(dense, masks), dim=-1), dense
        finally:
            if self.seve is not None:
                self.seve.set_text(None)  # no stale graph between steps

    def _cosine_logits(self, emb: Tensor, text: Tensor, groups: List[slice]) -> Tensor:
        cos = torch.einsum("bnd,pd->bnp", emb, text.to(emb.dtype))
        return self.merge_prompts(cos * self.logit_scale, groups, dim=-1)

    def _clip_logits(self, inputs: Tensor, text: Tensor, groups: List[slice], masks: Tensor,
                     dense: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        emb, dense = self._clip_embed(inputs, text, masks, dense)
        return self._cosine_logits(emb, text, groups), dense

    def class_logits(self, inputs: Tensor, gen: Dict[str, Any], masks: Tensor,
                     queries: Optional[Tensor] = None) -> Tensor:
        """``[B, N, C]`` logits of the classifier that trains (here the CLIP) for ``masks [B, N, H', W']``."""
        text, groups = self._text()
        return self._clip_logits(inputs, text, groups, masks)[0]

    def classify(self, inputs: Tensor, gen: Dict[str, Any], masks: Tensor, queries: Optional[Tensor] = None,
                 dense: Optional[Tensor] = None) -> MaskScores:
        """Class probabilities of ``masks [B, N, H', W']`` (aligned with ``inputs``) over the vocabulary."""
        text, groups = self._text()
        logits, dense = self._clip_logits(inputs, text, groups, masks, dense)
        return MaskScores(logits.softmax(-1), dense)

