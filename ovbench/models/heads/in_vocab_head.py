"""FC-CLIP's in-vocabulary classifier over a frozen, class-agnostic mask generator.

FC-CLIP (Yu et al., "Convolutions Die Hard: Open-Vocabulary Segmentation with Single
Frozen Convolutional CLIP", NeurIPS 2023) classifies each mask twice: an
*in-vocabulary* classifier trained on the training classes (its mask embeddings come
from the segmentation decoder and are compared with the text embeddings) and an
*out-of-vocabulary* one, the frozen CLIP's mask-pooled features; a geometric ensemble
of the two gives the final scores. In ovbench the mask generator is frozen (FISA's
setting), so the in-vocabulary embedding is built on top of it: the generator's
``mask_features`` are pooled inside each (soft) mask, optionally concatenated with the
proposal's query feature, and a small MLP maps the result into CLIP's joint space.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn


def mask_pool(features: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """Average of ``features [B, C, h, w]`` weighted by ``masks [B, N, H', W']`` (area-resized to
    ``h, w``) -> ``[B, N, C]``. An empty mask gives a zero vector."""
    if masks.shape[-2:] != features.shape[-2:]:
        masks = F.interpolate(masks, size=features.shape[-2:], mode="area")
    masks = masks.to(features.dtype)
    pooled = torch.einsum("bnhw,bchw->bnc", masks, features)
    return pooled / (masks.sum((-2, -1))[..., None] + eps)


@MODELS.register_module()
class InVocabularyHead(nn.Module):
    """Mask-pooled generator features (+ query features) -> MLP -> L2-normalised joint-space embedding.

    Args:
        in_dim: channels of the generator's ``mask_features`` (``mask_feature_dim``).
        embed_dim: CLIP's joint-space dimension (the text embeddings').
        query_dim: width of the generator's queries, concatenated to the pooled feature
            when ``use_queries`` (FC-CLIP classifies from decoder queries; pooling is the
            default here because the frozen generator's queries are class-agnostic).
        hidden_dim: hidden width of the MLP.
        num_layers: linear layers of the MLP (ReLU between them).
        use_queries: concatenate the proposal's query feature.
    """

    def __init__(self, in_dim: int, embed_dim: int, query_dim: int = 0, hidden_dim: int = 128,
                 num_layers: int = 2, use_queries: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"InVocabularyHead.num_layers: expected >= 1, got {num_layers}")
        if use_queries and query_dim <= 0:
            raise ValueError("InVocabularyHead: use_queries=True needs query_dim > 0")
        self.use_queries = use_queries
        dims = [in_dim + (query_dim if use_queries else 0)] + [hidden_dim] * (num_layers - 1) + [embed_dim]
        layers = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(*layers)

    def forward(self, mask_features: Tensor, masks: Tensor, queries: Optional[Tensor] = None) -> Tensor:
        """``mask_features [B, Cm, h, w]``, ``masks [B, N, H', W']`` in [0, 1], ``queries [B, N, Cq]``
        -> ``[B, N, embed_dim]`` unit vectors."""
        x = mask_pool(mask_features, masks)
        if self.use_queries:
            if queries is None or queries.shape[:2] != x.shape[:2]:
                raise ValueError(f"InVocabularyHead: use_queries needs queries [B, N, Cq] with B, N = "
                                 f"{tuple(x.shape[:2])}, got {None if queries is None else tuple(queries.shape)}")
            x = torch.cat([x, queries.to(x.dtype)], -1)
        return F.normalize(self.mlp(x), dim=-1)
