"""FC-CLIP's classifier (Yu et al., NeurIPS 2023): an in-vocabulary head and its geometric ensemble with CLIP.

A small head on the mask generator's ``mask_features`` is the trained in-vocabulary
classifier; the frozen CLIP's mask-pooled scores are the out-of-vocabulary one; at
test time ``p = normalise(p_in^(1-a) * p_out^a)`` with ``a = alpha_seen`` (0.4) for
classes of the training vocabulary and ``alpha_unseen`` (0.8) for the others. The
training vocabulary is recorded by ``loss`` and kept in the state dict
(``get_extra_state``). Without ``in_vocab_head`` this layer is the plain CLIP classifier.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from mmseg.registry import MODELS
from torch import Tensor

from ovbench.models.segmentors.mask_classifier import MaskCLIPClassifier, MaskScores

ENSEMBLE_DEFAULTS = dict(alpha_seen=0.4, alpha_unseen=0.8)


class FCCLIPClassifier(MaskCLIPClassifier):
    """The CLIP classifier, or (with ``in_vocab_head``) FC-CLIP's head + ensemble."""

    _train_classes: Optional[Tuple[str, ...]] = None

    def _init_in_vocabulary(self, in_vocab_head: Optional[Dict[str, Any]], ensemble: Optional[Dict[str, float]],
                            feature_dim: int, query_dim: int) -> None:
        """Build the head (through MODELS) and check the ensemble's keys; ``feature_dim``/``query_dim``: the
        generator's ``mask_features`` channels and query width."""
        name = type(self).__name__
        self.in_vocab_head = None
        if in_vocab_head is not None:
            if self.seve is not None or any(p.requires_grad for p in self.backbone.parameters()):
                raise ValueError(
                    f"{name}.in_vocab_head (FC-CLIP): the CLIP is the frozen out-of-vocabulary "
                    "classifier; use clip.peft=dict(type='frozen') and seve=None with it")
            head = {"type": "InVocabularyHead", "query_dim": query_dim, **dict(in_vocab_head)}
            self.in_vocab_head = MODELS.build(dict(head, in_dim=feature_dim, embed_dim=self.backbone.embed_dim))
        if ensemble is not None:
            if self.in_vocab_head is None:
                raise NotImplementedError(
                    f"{name}.ensemble needs in_vocab_head (FC-CLIP: head = in-vocabulary, frozen CLIP "
                    "= out-of-vocabulary); an ensemble of an adapted CLIP with a frozen copy is not implemented")
            unknown = set(ensemble) - set(ENSEMBLE_DEFAULTS)
            if unknown:
                raise KeyError(f"{name}.ensemble: unknown keys {sorted(unknown)}; expected 'alpha_seen', "
                               "'alpha_unseen'")
            ensemble = {**ENSEMBLE_DEFAULTS, **dict(ensemble)}
        self.ensemble = ensemble

    # -------------------------------------------------------------- seen classes
    def get_extra_state(self) -> Dict[str, Any]:
        """The training vocabulary travels with the weights (the ensemble's seen/unseen split)."""
        return {"train_classes": list(self._train_classes) if self._train_classes is not None else None}

    def set_extra_state(self, state: Any) -> None:
        classes = (state or {}).get("train_classes") if isinstance(state, dict) else None
        self._train_classes = tuple(classes) if classes is not None else None

    def seen_mask(self) -> Tensor:
        """``[C]`` bool: class of the training vocabulary (recorded), else not in ``unseen_classes``."""
        names = self.class_names
        if self._train_classes is not None:
            seen = set(self._train_classes)
            return torch.tensor([c in seen for c in names])
        if self._meta.get("unseen_classes") is not None:
            unseen = set(self._meta["unseen_classes"])
            return torch.tensor([c not in unseen for c in names])
        return torch.zeros(len(names), dtype=torch.bool)

    @staticmethod
    def ensemble_probs(p_in: Tensor, p_out: Tensor, alpha: Tensor, eps: float = 1e-8) -> Tensor:
        """FC-CLIP's geometric ensemble ``p_in^(1-a) * p_out^a`` per class, renormalised over classes.

        ``p_in, p_out``: ``[..., C]`` probabilities; ``alpha``: ``[C]``.
        """
        alpha = alpha.to(p_in)
        log_p = (1 - alpha) * p_in.clamp_min(eps).log() + alpha * p_out.clamp_min(eps).log()
        return log_p.softmax(-1)

    # -------------------------------------------------------------- classification
    def _in_vocab_logits(self, gen: Dict[str, Any], masks: Tensor, queries: Optional[Tensor],
                         text: Tensor, groups: List[slice]) -> Tensor:
        return self._cosine_logits(self.in_vocab_head(gen["mask_features"], masks, queries), text, groups)

    def class_logits(self, inputs: Tensor, gen: Dict[str, Any], masks: Tensor,
                     queries: Optional[Tensor] = None) -> Tensor:
        if self.in_vocab_head is None:
            return super().class_logits(inputs, gen, masks, queries)
        text, groups = self._text()
        return self._in_vocab_logits(gen, masks, queries, text, groups)

    def classify(self, inputs: Tensor, gen: Dict[str, Any], masks: Tensor, queries: Optional[Tensor] = None,
                 dense: Optional[Tensor] = None) -> MaskScores:
        if self.in_vocab_head is None:
            return super().classify(inputs, gen, masks, queries, dense)
        text, groups = self._text()
        p_in = self._in_vocab_logits(gen, masks, queries, text, groups).softmax(-1)
        if self.ensemble is None:
            return MaskScores(p_in, dense)
        logits_out, dense = self._clip_logits(inputs, text, groups, masks, dense)
        seen = self.seen_mask().to(p_in.device)
        alpha = torch.where(seen, torch.full_like(p_in[0, 0], self.ensemble["alpha_seen"]),
                            torch.full_like(p_in[0, 0], self.ensemble["alpha_unseen"]))
        return MaskScores(self.ensemble_probs(p_in, logits_out.softmax(-1), alpha), dense)
