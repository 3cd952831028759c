"""Mask-token embeddings: one extra class token per mask proposal (MasQCLIP, Xu et al., ICCV 2023; SAN, Xu et al., CVPR 2023).

From block ``start = n - num_blocks`` on, ``N`` copies of the class token's
state entering that block are appended to the ViT sequence. Each copy (a
*mask token*) runs the block's own layers -- ``ln_1``, attention, ``ls_1``,
``ln_2``, MLP, ``ls_2`` of open_clip's ``ResidualAttentionBlock`` -- but its
attention is restricted by an additive bias to the patches inside its mask
(plus itself, and the class token when ``include_cls``); image tokens never
attend to mask tokens, so the image tokens, the dense features and the global
embedding are exactly those of :meth:`OVCLIP.encode_image`. The last mask
token states go through ``ln_post`` and ``proj``: one CLIP embedding per mask,
classified against the text embeddings like the global one.

How it runs: :meth:`OVCLIP.encode_image` itself runs the image tokens, and a
forward pre-hook on each of the last ``num_blocks`` blocks advances the mask
tokens with that block's input (so every other hook -- SEVE's injection,
VPT's prompts -- acts on the image tokens exactly as without mask tokens, and
nothing of the image path is duplicated here). The mask tokens' projections go
through the PEFT method (:meth:`PeftMethod.project`; the queries through
:meth:`PeftMethod.mask_query`, which SIMO overrides, see :mod:`ovbench.peft.simo`)
and the attention through the one kernel :func:`ovbench.peft.attend`. Tokens between the class token and the patches
(VPT prompts) are not visible to mask tokens.
"""
from __future__ import annotations

import functools
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovbench.models.clip.wrapper import OVCLIP
from ovbench.peft import PeftMethod, attend, get_peft_method
from ovbench.peft.base import attention_weights, block_method

BIASES = ("hard", "soft")


def mask_patch_bias(masks: Tensor, grid: Tuple[int, int], bias: str = "hard") -> Tensor:
    """``[B, N, H', W']`` masks -> ``[B, N, h*w]`` additive attention bias over the patch grid.

    Masks (values in [0, 1], any resolution) are area-averaged to the grid.
    ``'hard'``: 0 where the averaged mask is >= 0.5, ``-inf`` elsewhere; a mask
    with no such patch keeps its highest-valued patch, so no row is all
    ``-inf``. ``'soft'``: ``log(mask + 1e-6)``.
    """
    if bias not in BIASES:
        raise ValueError(f"mask tokens: bias must be one of {BIASES}, got {bias!r}")
    if masks.dim() != 4:
        raise ValueError(f"mask tokens: masks must be [B, N, H, W], got shape {tuple(masks.shape)}")
    b, n = masks.shape[:2]
    m = F.adaptive_avg_pool2d(masks.float().flatten(0, 1).unsqueeze(1), grid).reshape(b, n, grid[0] * grid[1])
    m = m.clamp(0, 1)
    if bias == "soft":
        return torch.log(m + 1e-6)
    inside = m >= 0.5
    empty = ~inside.any(-1)
    if empty.any():
        best = F.one_hot(m.argmax(-1), m.shape[-1]).bool()
        inside = inside | (best & empty.unsqueeze(-1))
    return torch.zeros_like(m).masked_fill(~inside, float("-inf"))


def mask_token_bias(patch_bias: Tensor, seq_len: int, include_cls: bool = True) -> Tensor:
    """``[B, N, T + N]`` bias of the mask tokens over ``[cls, (prompts), patches, mask tokens]``.

    ``seq_len`` = ``T``, the image sequence length (the patches are its last
    ``h*w`` tokens); mask tokens see the class token only when ``include_cls``,
    never other mask tokens, always themselves.
    """
    b, n, hw = patch_bias.shape
    extra = seq_len - 1 - hw
    if extra < 0:
        raise ValueError(f"mask tokens: the image sequence has {seq_len} tokens, fewer than 1 + {hw} patches "
                         "(patch dropout is not supported with mask tokens)")
    neg = torch.full((), float("-inf"), dtype=patch_bias.dtype, device=patch_bias.device)
    cls = torch.zeros((b, n, 1), dtype=patch_bias.dtype, device=patch_bias.device)
    cls = cls if include_cls else cls + neg
    own = torch.full((n, n), float("-inf"), dtype=patch_bias.dtype, device=patch_bias.device)
    own.fill_diagonal_(0.0)
    return torch.cat([cls, neg.expand(b, n, extra), patch_bias, own.expand(b, n, n)], dim=-1)


def mask_token_block(block: nn.Module, x: Tensor, m: Tensor, bias: Tensor, method: Optional[PeftMethod] = None,
                     key: Optional[Tuple[str, int]] = None) -> Tensor:
    """Advance mask tokens ``m`` ``[B, N, W]`` through ``block`` given the image tokens ``x`` ``[B, T, W]`` entering it.

    Keys and values are ``[x, m]`` (``ln_1`` then the block's k/v projections), ``bias`` ``[B, N, T + N]``
    restricts the attention. The projections go through ``method`` (block ``key``; by default the
    method whose attention the block runs): ``project`` for k/v/out, ``mask_query`` for the queries
    (SIMO gives mask tokens their own); without a method (merged model) they are the frozen ones. The image tokens themselves are not updated here (the
    block's own forward does that).
    """
    mha: nn.MultiheadAttention = block.attn
    if method is None:
        method, key = block_method(block)

    def proj(site: str, t: Tensor) -> Tensor:
        w, b = attention_weights(mha, site)
        if method is None:
            return F.linear(t, w, b)
        return method.mask_query(key, t, w, b) if site == "q" else method.project(key, site, t, w, b)

    xn, mn = block.ln_1(x), block.ln_1(m)
    kv = torch.cat([xn, mn], dim=1)
    o = attend(proj("q", mn), proj("k", kv), proj("v", kv), mha.num_heads, bias.to(x.dtype),
               mha.dropout if mha.training else 0.0)
    m = m + block.ls_1(proj("out", o))
    return m + block.ls_2(block.mlp(block.ln_2(m)))


def encode_with_mask_tokens(ovclip: OVCLIP, img: Tensor, masks: Tensor, num_blocks: int = 2, bias: str = "hard",
                            include_cls: bool = True) -> Dict[str, Tensor]:
    """``encode_image`` plus one embedding per mask.

    Args:
        ovclip: the CLIP wrapper (its PEFT method and any SEVE hooks apply).
        img: ``[B, 3, H, W]``.
        masks: ``[B, N, H', W']`` soft or binary masks in [0, 1], any resolution.
        num_blocks: how many of the last blocks the mask tokens run through.
        bias: ``'hard'`` or ``'soft'`` attention restriction (see :func:`mask_patch_bias`).
        include_cls: whether mask tokens may also attend to the image's class token.

    Returns:
        ``encode_image``'s dict (``cls``, ``dense``, ``features``, unchanged) plus
        ``mask_emb`` ``[B, N, D]`` (after ``ln_post`` and ``proj``, L2-normalised
        when ``ovclip.normalize``).
    """
    visual = ovclip.clip.visual
    blocks = visual.transformer.resblocks
    n_blocks = len(blocks)
    if not 1 <= int(num_blocks) <= n_blocks:
        raise ValueError(f"mask tokens: num_blocks must be in [1, {n_blocks}] for this encoder, got {num_blocks}")
    if masks.dim() != 4 or masks.shape[0] != img.shape[0]:
        raise ValueError(f"mask tokens: masks must be [B, N, H, W] with B = {img.shape[0]} (the images), "
                         f"got {tuple(masks.shape)}")
    ph, pw = ovclip.patch_size
    grid = (img.shape[-2] // ph, img.shape[-1] // pw)
    patch_bias = mask_patch_bias(masks.to(img.device), grid, bias).to(img.dtype)
    method = get_peft_method(ovclip.clip)
    start = n_blocks - int(num_blocks)
    state: Dict[str, Tensor] = {}

    def advance(i: int, block: nn.Module, args) -> None:
        x = args[0] if getattr(block.attn, "batch_first", True) else args[0].transpose(0, 1)
        if i == start:
            state["m"] = x[:, :1].expand(-1, masks.shape[1], -1)
            state["bias"] = mask_token_bias(patch_bias, x.shape[1], include_cls)
        state["m"] = mask_token_block(block, x, state["m"], state["bias"], method, ("image", i))

    handles = [blocks[i].register_forward_pre_hook(functools.partial(advance, i)) for i in range(start, n_blocks)]
    try:
        out = ovclip.encode_image(img)
    finally:
        for hnd in handles:
            hnd.remove()
    m = visual.ln_post(state["m"])
    if visual.proj is not None:
        m = m @ visual.proj
    out["mask_emb"] = F.normalize(m, dim=-1) if ovclip.normalize else m
    return out
