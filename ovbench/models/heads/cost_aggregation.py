"""Cost aggregation over an image-text cost volume, after CAT-Seg (Cho et al., CVPR 2024).

The design follows the paper's description (methods.md section 1); the code is
ovbench's own:

1. cost volume: cosine similarity of every dense image embedding with every
   class embedding, ``[B, C, h, w]``, embedded per class by a 7x7 conv;
2. ``num_layers`` x (spatial aggregation, class aggregation):
   * spatial: two Swin blocks (Liu et al., ICCV 2021) over each class's cost
     map, as in CAT-Seg's spatial aggregation: W-MSA, then SW-MSA shifted by
     half a window with Swin's attention mask, so that after the cyclic shift
     no token attends across the image border; queries and keys also see
     projected CLIP image features ("appearance guidance");
   * class: linear attention (Katharopoulos et al., 2020) across the C classes
     at every pixel; queries and keys also see projected text embeddings. No
     positional encoding over classes, so the output is permutation-equivariant
     in the classes and any vocabulary size works at test time;
3. an upsampling decoder: two x2 stages, each concatenating projected
   intermediate CLIP features (layers 3 and 7 for ViT-B/16), then a 1-channel
   conv per class -> logits ``[B, C, 4h, 4w]``.
"""
from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import nn


class _MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: int = 2) -> None:
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, dim * ratio), nn.GELU(), nn.Linear(dim * ratio, dim))


def guided_linear(linear: nn.Linear, y: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
    """``linear(cat([y, guidance.expand_as(...)], -1))`` without building the concatenation.

    The guidance is shared across classes (image features) or pixels (text features), so its part
    of the product is computed once at its own size and broadcast in the sum: the same function,
    without a ``[B, C, h, w, dim + g]`` copy or the repeated product (issue 18). ``linear``'s
    weight keeps its ``[out, dim + g]`` shape, so checkpoints are unchanged.
    """
    if guidance is None:
        return linear(y)
    dim = y.shape[-1]
    return F.linear(y, linear.weight[:, :dim]) + F.linear(guidance, linear.weight[:, dim:], linear.bias)


class SwinBlock(nn.Module):
    """One Swin block over each class's cost map: (shifted) window self-attention + MLP, guided by image
    features. ``shift=True``: SW-MSA -- the map is rolled by ``window // 2`` and every token attends only
    to tokens of its own shifted window (Swin's attention mask), never to the tokens the roll brought in
    from the opposite border."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, window: int, shift: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"SpatialAggregation: hidden dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.window = num_heads, window
        self.shift = window // 2 if shift else 0
        self.norm = nn.LayerNorm(dim)
        self.qk = nn.Linear(dim + guidance_dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = _MLP(dim)

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        """``x``: ``[B, C, H, W, dim]``; ``guidance``: ``[B, H, W, g]`` or None."""
        y = self.norm(x)
        g = None if guidance is None else guidance[:, None]  # the same for every class
        q, k = guided_linear(self.qk, y, g).chunk(2, dim=-1)
        v = self.v(y)
        out = self._window_attention(q, k, v)
        x = x + self.proj(out)
        return x + self.mlp(x)

    def _geometry(self, h: int, w: int) -> Tuple[int, int]:
        """Window size and shift for an ``h x w`` map: as in Swin, a map no larger than one window is one
        unshifted window."""
        if min(h, w) <= self.window:
            return min(h, w), 0
        return self.window, self.shift

    def _window_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, c, h, w, d = q.shape
        ws, shift = self._geometry(h, w)
        pad_h, pad_w = (-h) % ws, (-w) % ws
        hp, wp = h + pad_h, w + pad_w

        def to_windows(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(b * c, h, w, d)
            if pad_h or pad_w:  # pad, then roll (as mmseg's Swin)
                t = F.pad(t, (0, 0, 0, pad_w, 0, pad_h))
            if shift:
                t = torch.roll(t, (-shift, -shift), dims=(1, 2))
            t = t.reshape(b * c, hp // ws, ws, wp // ws, ws, self.num_heads, d // self.num_heads)
            return t.permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, self.num_heads, ws * ws, d // self.num_heads)

        qw, kw, vw = to_windows(q), to_windows(k), to_windows(v)
        mask = None
        if shift or pad_h or pad_w:
            mask = window_mask(h, w, ws, shift, q.device)  # [nW, ws*ws, ws*ws]
            mask = mask[None].expand(b * c, -1, -1, -1).reshape(-1, 1, ws * ws, ws * ws)
        out = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask)
        out = out.reshape(b * c, hp // ws, wp // ws, self.num_heads, ws, ws, d // self.num_heads)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(b * c, hp, wp, d)
        if shift:
            out = torch.roll(out, (shift, shift), dims=(1, 2))
        return out[:, :h, :w].reshape(b, c, h, w, d)


def window_mask(h: int, w: int, ws: int, shift: int, device: Any = None) -> torch.Tensor:
    """``[nW, ws*ws, ws*ws]`` bool (True = may attend) for the windows of the padded, then rolled map.

    Swin's attention mask, written for any size: the map is padded to a multiple of ``ws``, so the
    shifted windows are Swin's partition of the padded map (rows ``[0, shift)`` form their own
    region, then ``[shift, shift + ws)``, ...). Each rolled position is labelled with the region of
    the padded row/column it holds; padding gets -1. A query attends to keys of its own label only;
    padded queries attend to themselves (their outputs are dropped), so no row is empty.
    """
    hp, wp = h + (-h) % ws, w + (-w) % ws

    def labels(n: int, n_pad: int) -> torch.Tensor:
        orig = (torch.arange(n_pad, device=device) + shift) % n_pad  # the padded row/column a rolled position holds
        lab = torch.div(orig - shift, ws, rounding_mode="floor") + 1  # 0 = the part before the first shift
        return torch.where(orig < n, lab, torch.full_like(lab, -1))

    ly, lx = labels(h, hp), labels(w, wp)
    n_lab = int(lx.max()) + 2
    valid = (ly[:, None] >= 0) & (lx[None] >= 0)
    ids = torch.where(valid, ly[:, None] * n_lab + lx[None], torch.full((hp, wp), -1, device=device))
    ids = ids.reshape(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    same = (ids[:, :, None] == ids[:, None, :]) & (ids[:, None, :] >= 0)
    return same | torch.eye(ws * ws, dtype=torch.bool, device=device)


class SpatialAggregation(nn.Module):
    """CAT-Seg's spatial aggregation layer: two Swin blocks over each class's cost map, W-MSA then SW-MSA
    (shifted by half a window, masked), both guided by the same image features."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim, guidance_dim, num_heads, window, shift) for shift in (False, True))

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, guidance)
        return x


class ClassAggregation(nn.Module):
    """Linear attention across classes at each pixel; no class positional encoding."""

    def __init__(self, dim: int, text_guidance_dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ClassAggregation: hidden dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim)
        self.qk = nn.Linear(dim + text_guidance_dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = _MLP(dim)

    def forward(self, x: torch.Tensor, text_guidance: Optional[torch.Tensor]) -> torch.Tensor:
        """``x``: ``[B, C, H, W, dim]``; ``text_guidance``: ``[B, C, t]`` or None."""
        b, c, h, w, d = x.shape
        y = self.norm(x)
        g = None if text_guidance is None else text_guidance[:, :, None, None]  # the same at every pixel
        q, k = guided_linear(self.qk, y, g).chunk(2, dim=-1)
        v = self.v(y)

        def heads(t: torch.Tensor) -> torch.Tensor:  # -> [B*H*W, heads, C, d_h]
            return t.permute(0, 2, 3, 1, 4).reshape(b * h * w, c, self.num_heads, -1).transpose(1, 2)

        q, k, v = F.elu(heads(q)) + 1, F.elu(heads(k)) + 1, heads(v)
        kv = torch.einsum("nhcd,nhce->nhde", k, v)
        norm = 1.0 / (torch.einsum("nhcd,nhd->nhc", q, k.sum(2)) + 1e-6)
        out = torch.einsum("nhcd,nhde,nhc->nhce", q, kv, norm)
        out = out.transpose(1, 2).reshape(b, h, w, c, d).permute(0, 3, 1, 2, 4)
        x = x + self.proj(out)
        return x + self.mlp(x)


class _UpBlock(nn.Module):
    """x2 upsampling of each class's map, concatenated with projected CLIP guidance."""

    def __init__(self, in_dim: int, guidance_dim: int, out_dim: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_dim, in_dim, 2, stride=2)
        self.conv = nn.Sequential(
            nn.Conv2d(in_dim + guidance_dim, out_dim, 3, padding=1),
            nn.GroupNorm(max(1, out_dim // 16), out_dim),
            nn.GELU(),
            nn.Conv2d(out_dim, out_dim, 3, padding=1),
            nn.GroupNorm(max(1, out_dim // 16), out_dim),
            nn.GELU(),
        )
        self.guidance_dim = guidance_dim

    def forward(self, x: torch.Tensor, guidance: Optional[torch.Tensor], num_classes: int) -> torch.Tensor:
        x = self.up(x)
        if self.guidance_dim:
            g = guidance.repeat_interleave(num_classes, dim=0).contiguous(memory_format=torch.channels_last)
            x = torch.cat([x, g], dim=1)  # channels-last in, channels-last out (CostAggregator.forward)
        return self.conv(x)


@MODELS.register_module()
class CostAggregator(nn.Module):
    """Cost volume -> aggregated per-class logits at 4x the patch resolution.

    Args:
        embed_dim: joint image-text embedding width (CLIP ``output_dim``).
        clip_width: width of the CLIP image transformer (for intermediate features).
        hidden_dim, num_layers, num_heads, window: aggregation transformer (CAT-Seg B/16: 128, 2, 4, 12); each
            layer = spatial aggregation (two Swin blocks) + class aggregation.
        appearance_guidance_dim, text_guidance_dim: projections of CLIP features into q/k (0 disables).
        decoder_dims: channels of the two x2 upsampling stages.
        decoder_guidance_dims: projections of the intermediate CLIP layers fed to each stage (0 disables).
        cost_scale: factor on the cosine cost volume before its embedding (1 = CAT-Seg, which embeds raw
            cosines). Why it is a knob: cosines of one pixel differ between classes by a few hundredths,
            small beside the embedding conv's bias at initialisation, so the head may start from a weak
            class signal; CLIP's own logit scale (``logit_scale.exp()``: 22.9 for the shipped tiny CLIP,
            100 for OpenAI's) is the factor CLIP's logits use. An embedded-benchmark probe of issue 20.
    """

    def __init__(
        self,
        embed_dim: int,
        clip_width: int,
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        window: int = 12,
        appearance_guidance_dim: int = 128,
        text_guidance_dim: int = 128,
        decoder_dims: Sequence[int] = (64, 32),
        decoder_guidance_dims: Sequence[int] = (32, 16),
        cost_scale: float = 1.0,
    ) -> None:
        super().__init__()
        try:
            scale = math.nan if isinstance(cost_scale, bool) else float(cost_scale)
        except (TypeError, ValueError):
            scale = math.nan
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"CostAggregator: cost_scale must be a finite positive number, got {cost_scale!r}")
        self.cost_scale = scale
        if len(decoder_dims) != len(decoder_guidance_dims):
            raise ValueError("CostAggregator: decoder_dims and decoder_guidance_dims must have the same length")
        self.cost_embed = nn.Conv2d(1, hidden_dim, 7, padding=3)
        self.appearance = nn.Linear(embed_dim, appearance_guidance_dim) if appearance_guidance_dim else None
        self.text = nn.Linear(embed_dim, text_guidance_dim) if text_guidance_dim else None
        self.layers = nn.ModuleList()
        for _ in range(num_layers):
            self.layers.append(SpatialAggregation(hidden_dim, appearance_guidance_dim, num_heads, window))
            self.layers.append(ClassAggregation(hidden_dim, text_guidance_dim, num_heads))
        self.guidance_proj = nn.ModuleList(
            nn.Conv2d(clip_width, g, 1) if g else nn.Identity() for g in decoder_guidance_dims
        )
        dims = [hidden_dim, *decoder_dims]
        self.decoder = nn.ModuleList(
            _UpBlock(dims[i], decoder_guidance_dims[i], dims[i + 1]) for i in range(len(decoder_dims))
        )
        self.head = nn.Conv2d(dims[-1], 1, 3, padding=1)

    @staticmethod
    def cost_volume(dense: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[B, C, h, w]`` of dense image embeddings and class embeddings."""
        dense = F.normalize(dense, dim=1)
        text = F.normalize(text, dim=-1)
        if text.dim() == 2:
            return torch.einsum("bdhw,cd->bchw", dense, text)
        return torch.einsum("bdhw,bcd->bchw", dense, text)

    def forward(
        self, dense: torch.Tensor, text: torch.Tensor, features: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """``dense`` ``[B, D, h, w]``, ``text`` ``[C, D]`` or ``[B, C, D]``, ``features``: CLIP
        intermediate maps ``[B, width, h, w]`` (one per decoder stage, shallowest last) ->
        logits ``[B, C, h * 2^stages, w * 2^stages]``."""
        b, _, h, w = dense.shape
        cost = self.cost_volume(dense, text)
        if self.cost_scale != 1.0:
            cost = cost * self.cost_scale
        c = cost.shape[1]
        x = self.cost_embed(cost.reshape(b * c, 1, h, w))
        # [B, C, h, w, hidden], made contiguous once: as a permuted view, every residual sum kept the
        # conv's layout and each LayerNorm / Linear below copied its input.
        x = x.reshape(b, c, -1, h, w).permute(0, 1, 3, 4, 2).contiguous()
        app = self.appearance(dense.permute(0, 2, 3, 1)) if self.appearance is not None else None
        txt = None
        if self.text is not None:
            t = text if text.dim() == 3 else text[None].expand(b, -1, -1)
            txt = self.text(t)
        for layer in self.layers:
            x = layer(x, app if isinstance(layer, SpatialAggregation) else txt)
        # The decoder runs channels-last: its per-class maps have 4-64 channels, where oneDNN's NCHW
        # convolutions are 2-3x slower on CPU (benchmarks/trial_time.py). [B, C, h, w, hidden] is
        # already that layout, so the permute below copies nothing.
        x = x.reshape(b * c, h, w, -1).permute(0, 3, 1, 2)
        guidance = self._decoder_guidance(features, h, w)
        for block, g in zip(self.decoder, guidance):
            x = block(x, g, c)
        return self.head(x).reshape(b, c, x.shape[-2], x.shape[-1])

    def _decoder_guidance(self, features: Sequence[torch.Tensor], h: int, w: int) -> List[Optional[torch.Tensor]]:
        out: List[Optional[torch.Tensor]] = []
        for i, proj in enumerate(self.guidance_proj):
            if isinstance(proj, nn.Identity):
                out.append(None)
                continue
            if i >= len(features):
                raise ValueError(
                    f"CostAggregator: decoder stage {i} needs an intermediate CLIP feature map; got "
                    f"{len(features)} (set the CLIP wrapper's out_indices, e.g. (7, 3) for ViT-B/16)"
                )
            scale = 2 ** (i + 1)
            g = proj(features[i])
            out.append(F.interpolate(g, size=(h * scale, w * scale), mode="bilinear", align_corners=False))
        return out


@MODELS.register_module()
class ZeroShotCost(nn.Module):
    """The zero-shot head (MaskCLIP, Zhou et al., ECCV 2022): the cost volume times a fixed temperature.

    Nothing trains; it stands where :class:`CostAggregator` stands so that the segmentor keeps one
    forward path.
    """

    def __init__(self, logit_scale: float = 100.0) -> None:
        super().__init__()
        self.logit_scale = float(logit_scale)

    def forward(self, dense: torch.Tensor, text: torch.Tensor, features: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        return CostAggregator.cost_volume(dense, text) * self.logit_scale
