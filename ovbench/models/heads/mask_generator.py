"""A compact, class-agnostic, query-based mask generator (FISA's frozen proposal network).

The design follows Mask2Former (Cheng et al., "Masked-attention Mask Transformer for
Universal Image Segmentation", CVPR 2022); the code is ovbench's own and much smaller:

1. backbone: ``len(channels)`` strided conv stages (two 3x3 convs + GroupNorm + ReLU
   each), strides 2, 4, 8, 16 for the default four stages. Mask2Former uses a
   ResNet-50/Swin and a multi-scale *deformable*-attention pixel decoder; both are far
   too slow for a ~3-minute CPU training stage on 64x64 images, so
2. the pixel decoder is an FPN-like top-down path (lateral 1x1 convs, nearest x2
   upsampling, a 3x3 conv per level) ending at stride 4, whose last level, through a
   1x1 conv, is ``mask_features`` ``[B, Cm, H/4, W/4]``;
3. a transformer decoder of ``num_layers`` layers over ``num_queries`` learnable query
   features with learnable query positional embeddings. As in Mask2Former each layer is
   masked cross-attention -> self-attention -> FFN (post-norm), and the cross-attention
   of layer ``l`` attends to one pixel-decoder level (round-robin over
   ``memory_strides``) only where the previous prediction's mask is foreground
   (sigmoid > 0.5, resized to that level); a query whose mask is empty attends everywhere;
4. prediction heads shared by all layers, applied to the layer-normed queries before the
   first layer and after each layer (deep supervision): mask logits =
   ``einsum(MLP(query), mask_features)`` and one objectness logit (Mask2Former's
   "no object" class reduced to a binary, class-agnostic score).

The defaults (0.32M parameters, 16 queries, for 64x64 inputs) train in ~2 minutes on one CPU
core (configs/synth/mask_generator.py: recall@0.5 88% of synth_large's segments).

``forward(img)`` returns ``dict(mask_logits [B,N,H/4,W/4], objectness [B,N],
mask_features [B,Cm,H/4,W/4], queries [B,N,Cq])`` and, in training mode, ``aux``: the
earlier predictions as a list of ``(mask_logits, objectness)``, first to last.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import Tensor, nn


def _conv_gn(in_ch: int, out_ch: int, stride: int = 1, kernel: int = 3, groups: int = 4) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.GroupNorm(min(groups, out_ch), out_ch),
        nn.ReLU(inplace=True),
    )


def sine_position_embedding(h: int, w: int, dim: int, device: torch.device, temperature: float = 10000.0) -> Tensor:
    """2-D sine/cosine position embedding ``[h*w, dim]`` (the DETR/Mask2Former form, normalised
    coordinates so that it does not depend on the feature map's size)."""
    if dim % 4:
        raise ValueError(f"sine_position_embedding: dim {dim} must be divisible by 4")
    quarter = dim // 4
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h * 2 * math.pi
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w * 2 * math.pi
    freq = temperature ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    py = ys[:, None] / freq  # [h, q]
    px = xs[:, None] / freq  # [w, q]
    py = torch.cat([py.sin(), py.cos()], -1)[:, None].expand(h, w, 2 * quarter)
    px = torch.cat([px.sin(), px.cos()], -1)[None].expand(h, w, 2 * quarter)
    return torch.cat([py, px], -1).reshape(h * w, dim)


class _MLP(nn.Sequential):
    """``num_layers`` linear layers with ReLU in between (Mask2Former's mask-embedding MLP)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 3) -> None:
        layers: List[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _DecoderLayer(nn.Module):
    """Masked cross-attention -> self-attention -> FFN, each residual + post-LayerNorm."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_self = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.norm_ffn = nn.LayerNorm(dim)

    def forward(self, q: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                attn_mask: Optional[Tensor]) -> Tensor:
        out = self.cross_attn(q + query_pos, memory + memory_pos, memory, attn_mask=attn_mask, need_weights=False)[0]
        q = self.norm_cross(q + out)
        qk = q + query_pos
        q = self.norm_self(q + self.self_attn(qk, qk, q, need_weights=False)[0])
        return self.norm_ffn(q + self.ffn(q))


@MODELS.register_module()
class QueryMaskGenerator(BaseModule):
    """Class-agnostic mask proposals from ``num_queries`` learnable queries (Mask2Former-style).

    Args:
        num_queries: N, proposals per image.
        channels: output channels of the conv backbone's stages (each halves the resolution).
        mask_feature_dim: Cm, channels of the pixel decoder and of ``mask_features``.
        query_dim: Cq, width of the transformer decoder.
        num_layers: L, transformer decoder layers (L + 1 predictions, deep supervision).
        num_heads: attention heads of the decoder.
        ffn_dim: hidden width of the decoder's FFN.
        memory_strides: pixel-decoder strides the layers cross-attend to, round-robin
            (Mask2Former cycles through 1/32, 1/16, 1/8 of large images; at 64x64 the default
            1/8 and 1/4 are 8x8 and 16x16 maps: on synth_train's val split (1500 iterations)
            they gave a class-agnostic PQ of 68.9 against 64.4 for 1/16 and 1/8).
        mask_threshold: sigmoid level above which a pixel is inside a query's attention mask.
        init_cfg: mmengine initialisation config.
    """

    def __init__(
        self,
        num_queries: int = 16,
        channels: Sequence[int] = (16, 32, 48, 64),
        mask_feature_dim: int = 32,
        query_dim: int = 64,
        num_layers: int = 3,
        num_heads: int = 4,
        ffn_dim: int = 128,
        memory_strides: Sequence[int] = (8, 4),
        mask_threshold: float = 0.5,
        init_cfg: Optional[dict] = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(channels) < 2:
            raise ValueError(f"QueryMaskGenerator: channels needs >= 2 stages (stride 4 is the mask level), got {channels}")
        strides = [2 ** (i + 1) for i in range(len(channels))]
        bad = [s for s in memory_strides if s not in strides or s < 4]
        if bad or not memory_strides:
            raise ValueError(f"QueryMaskGenerator: memory_strides {tuple(memory_strides)} must be a non-empty "
                             f"subset of the pixel-decoder strides {tuple(s for s in strides if s >= 4)}")
        if query_dim % num_heads:
            raise ValueError(f"QueryMaskGenerator: query_dim {query_dim} must be divisible by num_heads {num_heads}")
        self.num_queries = num_queries
        self.mask_feature_dim = mask_feature_dim
        self.query_dim = query_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mask_threshold = mask_threshold
        self.strides = strides
        self.memory_strides = tuple(memory_strides)

        # 1. backbone
        stages = []
        in_ch = 3
        for ch in channels:
            stages.append(nn.Sequential(_conv_gn(in_ch, ch, stride=2), _conv_gn(ch, ch)))
            in_ch = ch
        self.stages = nn.ModuleList(stages)
        # 2. pixel decoder (stride 4 and coarser)
        self.first_level = 1  # index of the stride-4 stage
        self.lateral = nn.ModuleList(nn.Conv2d(ch, mask_feature_dim, 1) for ch in channels[self.first_level:])
        self.output = nn.ModuleList(_conv_gn(mask_feature_dim, mask_feature_dim) for _ in channels[self.first_level:])
        self.mask_proj = nn.Conv2d(mask_feature_dim, mask_feature_dim, 1)
        # 3. transformer decoder
        self.memory_proj = nn.ModuleDict(
            {str(s): nn.Linear(mask_feature_dim, query_dim) for s in self.memory_strides})
        self.level_embed = nn.Embedding(len(self.memory_strides), query_dim)
        self.query_feat = nn.Embedding(num_queries, query_dim)
        self.query_pos = nn.Embedding(num_queries, query_dim)
        self.layers = nn.ModuleList(_DecoderLayer(query_dim, num_heads, ffn_dim) for _ in range(num_layers))
        # 4. prediction heads (shared across layers)
        self.decoder_norm = nn.LayerNorm(query_dim)
        self.mask_embed = _MLP(query_dim, query_dim, mask_feature_dim, 3)
        self.objectness = nn.Linear(query_dim, 1)

    # ------------------------------------------------------------------ pieces
    def pixel_decoder(self, img: Tensor) -> Dict[int, Tensor]:
        """Image -> ``{stride: [B, Cm, H/stride, W/stride]}`` for strides >= 4 (FPN top-down)."""
        feats = []
        x = img
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        feats = feats[self.first_level:]
        out: Dict[int, Tensor] = {}
        top: Optional[Tensor] = None
        for i in range(len(feats) - 1, -1, -1):
            lat = self.lateral[i](feats[i])
            if top is not None:
                lat = lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            top = self.output[i](lat)
            out[self.strides[i + self.first_level]] = top
        return out

    def predict_heads(self, queries: Tensor, mask_features: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Normed queries -> (mask logits ``[B,N,h,w]``, objectness ``[B,N]``, normed queries)."""
        q = self.decoder_norm(queries)
        mask_logits = torch.einsum("bnc,bchw->bnhw", self.mask_embed(q), mask_features)
        return mask_logits, self.objectness(q).squeeze(-1), q

    def attention_mask(self, mask_logits: Tensor, size: Tuple[int, int]) -> Tensor:
        """Masked attention (Mask2Former): ``True`` = not attended; ``[B*heads, N, h*w]``.
        Computed without gradient from the previous prediction; an empty mask attends everywhere."""
        with torch.no_grad():
            m = F.interpolate(mask_logits, size=size, mode="bilinear", align_corners=False)
            blocked = m.sigmoid().flatten(2) < self.mask_threshold
            blocked[blocked.all(-1)] = False
            return blocked.repeat_interleave(self.num_heads, dim=0)

    # ------------------------------------------------------------------ forward
    def forward(self, img: Tensor) -> Dict[str, object]:
        levels = self.pixel_decoder(img)
        mask_features = self.mask_proj(levels[4])
        b = img.shape[0]
        memories = []
        for i, s in enumerate(self.memory_strides):
            feat = levels[s]
            h, w = feat.shape[-2:]
            mem = self.memory_proj[str(s)](feat.flatten(2).transpose(1, 2)) + self.level_embed.weight[i]
            pos = sine_position_embedding(h, w, self.query_dim, feat.device)[None].expand(b, -1, -1)
            memories.append((mem, pos, (h, w)))

        queries = self.query_feat.weight[None].expand(b, -1, -1)
        query_pos = self.query_pos.weight[None].expand(b, -1, -1)
        predictions = [self.predict_heads(queries, mask_features)]
        for i, layer in enumerate(self.layers):
            mem, pos, size = memories[i % len(memories)]
            attn_mask = self.attention_mask(predictions[-1][0], size)
            queries = layer(queries, query_pos, mem, pos, attn_mask)
            predictions.append(self.predict_heads(queries, mask_features))

        mask_logits, objectness, normed = predictions[-1]
        out: Dict[str, object] = dict(mask_logits=mask_logits, objectness=objectness,
                                      mask_features=mask_features, queries=normed)
        if self.training:
            out["aux"] = [(m, o) for m, o, _ in predictions[:-1]]
        return out
