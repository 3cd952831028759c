"""Dense (per-patch) image embeddings of an open_clip ViT: one implementation of every path.

Used by :class:`~ovbench.models.clip.OVCLIP` (``dense=...``) and by the zero-shot figures of
:mod:`ovbench.pretrain.zeroshot`, so a mode's name means one computation everywhere.
Modes (``DENSE_MODES``; ``window<k>`` takes any odd ``k``):

* ``'maskclip'``: MaskCLIP (Zhou et al., ECCV 2022; its released ViT code, the
  ``skip_last_attn`` switch): in the last block the value path ``out_proj(v_proj(ln_1(x)))``
  replaces the attention output, and the block's residual and MLP follow as usual;
  then ``ln_post`` and ``proj``.
* ``'value'``: the value path *alone* -- ``out_proj(v_proj(ln_1(x)))`` of the last block,
  no residual, no MLP -- then ``ln_post`` and ``proj``. Dropping the residual and the FFN
  is the family of later training-free methods (SCLIP, Wang et al., 2023; ClearCLIP,
  Lan et al., ECCV 2024, which found the residual the main source of noise); this path
  is their common core, without their own attention changes.
* ``'last'``: the plain final tokens through ``ln_post`` and ``proj`` (CAT-Seg's input).
* ``'window<k>'``: local-window inference, ovbench's own path for small average-pooled
  CLIPs (docs/synthetic_benchmark.md: the best zero-shot path on the shipped tiny CLIP):
  each patch's embedding is the tower's own pooled, projected embedding of a sequence
  holding only the class token and the ``k x k`` patch tokens around it (windows clamped
  at the border). Dropping tokens at inference is what FLIP's patch dropout does in
  training (Li et al., CVPR 2023). It runs the whole tower once per patch (``h*w``
  sequences of ``1 + k*k`` tokens).

The q/k/v/out projections go through :func:`ovbench.peft.site_linear`, so a PEFT method
that adapts them applies in every mode.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovbench.peft import site_linear

DENSE_MODES = ("maskclip", "value", "last", "window3", "window5")
_WINDOW = re.compile(r"^window(\d+)$")


def check_dense_mode(mode: str, where: str = "dense") -> str:
    """``mode`` if it names a dense path, else a ValueError listing them."""
    m = _WINDOW.match(mode) if isinstance(mode, str) else None
    if mode in ("maskclip", "value", "last") or (m and int(m.group(1)) % 2 == 1):
        return mode
    raise ValueError(f"{where}: expected one of 'maskclip', 'value', 'last' or 'window<k>' with odd k "
                     f"(e.g. {', '.join(repr(d) for d in DENSE_MODES)}), got {mode!r}")


def window_size(mode: str) -> Optional[int]:
    """``k`` of a ``'window<k>'`` mode, None for the other modes."""
    m = _WINDOW.match(mode)
    return int(m.group(1)) if m else None


def run_blocks(transformer: nn.Module, x: Tensor, keep: Iterable[int] = ()) -> Tuple[Tensor, Tensor, Dict[int, Tensor]]:
    """Run a (batch-first) token sequence through the tower's blocks.

    Returns ``(input of the last block, output of the last block, {i: output of block i for i in keep})``;
    the last block's input is what the MaskCLIP and value paths start from.
    """
    bf = getattr(transformer, "batch_first", True)
    blocks = transformer.resblocks
    keep = set(keep)
    feats: Dict[int, Tensor] = {}
    x_last_in = x
    for i, blk in enumerate(blocks):
        if i == len(blocks) - 1:
            x_last_in = x
        x = blk(x if bf else x.transpose(0, 1))
        x = x if bf else x.transpose(0, 1)
        if i in keep:
            feats[i] = x
    return x_last_in, x, feats


def value_path(block: nn.Module, x: Tensor) -> Tensor:
    """``out_proj(v_proj(ln_1(x)))`` of one block: its attention with every token attending only to itself."""
    return site_linear(block, "out", site_linear(block, "v", block.ln_1(x)))


def maskclip_block(block: nn.Module, x: Tensor) -> Tensor:
    """The block with its attention output replaced by the value path; residual and MLP kept (MaskCLIP)."""
    y = x + block.ls_1(value_path(block, x))
    return y + block.ls_2(block.mlp(block.ln_2(y)))


def global_embedding(visual: nn.Module, x: Tensor) -> Tensor:
    """The image embedding before ``proj``, pooled as the model itself pools (open_clip's
    ``VisionTransformer``: class token for 'tok', mean of patch tokens for 'avg')."""
    if getattr(visual, "attn_pool", None) is not None:
        raise NotImplementedError("attentional-pooling vision towers (CoCa) are not supported")
    if getattr(visual, "final_ln_after_pool", False):
        return visual.ln_post(visual._global_pool(x)[0])
    return visual._global_pool(visual.ln_post(x))[0]


def project(visual: nn.Module, x: Tensor) -> Tensor:
    return x @ visual.proj if visual.proj is not None else x


def dense_tokens(visual: nn.Module, mode: str, x_in: Tensor, x_last_in: Tensor, x_out: Tensor,
                 grid: Tuple[int, int], chunk: int = 4096) -> Tensor:
    """``[B, h*w, D]`` per-patch embeddings in the joint space (not normalised).

    ``x_in``: the tokens entering the first block (class token first, after ``ln_pre``);
    ``x_last_in`` / ``x_out``: the last block's input / output (:func:`run_blocks`).
    """
    k = window_size(mode)
    if k is not None:
        return window_tokens(visual, x_in, grid, k, chunk)
    n_patch = grid[0] * grid[1]
    if mode == "last":
        t = x_out
    elif mode == "value":
        t = value_path(visual.transformer.resblocks[-1], x_last_in)
    elif mode == "maskclip":
        t = maskclip_block(visual.transformer.resblocks[-1], x_last_in)
    else:
        check_dense_mode(mode)
    return project(visual, visual.ln_post(t[:, -n_patch:]))


def window_tokens(visual: nn.Module, x_in: Tensor, grid: Tuple[int, int], k: int, chunk: int = 4096) -> Tensor:
    """Local-window inference (module docstring): ``[B, h*w, D]``."""
    blocks = visual.transformer.resblocks
    if any(b._forward_hooks or b._forward_pre_hooks for b in blocks):
        raise ValueError("dense='window<k>' runs the image tower on local windows; block hooks (VPT prompts, "
                         "SEVE, mask tokens) are not defined on those sequences. Use 'maskclip', 'value' or 'last'")
    b, n, width = x_in.shape
    gh, gw = grid
    r = k // 2
    ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    offs = torch.arange(-r, r + 1)
    wy = (ys.reshape(-1, 1, 1) + offs.view(1, -1, 1)).clamp(0, gh - 1)
    wx = (xs.reshape(-1, 1, 1) + offs.view(1, 1, -1)).clamp(0, gw - 1)
    idx = (n - gh * gw) + (wy * gw + wx).reshape(gh * gw, k * k).to(x_in.device)  # patch token indices
    seq = torch.cat([x_in[:, :1].unsqueeze(1).expand(b, gh * gw, 1, width), x_in[:, idx]], dim=2)
    seq = seq.reshape(b * gh * gw, 1 + k * k, width)
    outs = [project(visual, global_embedding(visual, run_blocks(visual.transformer, s)[1]))
            for s in seq.split(chunk)]
    return torch.cat(outs).reshape(b, gh * gw, -1)


def normalize_map(tokens: Tensor, grid: Tuple[int, int]) -> Tensor:
    """``[B, h*w, D]`` -> L2-normalised ``[B, D, h, w]``."""
    b = tokens.shape[0]
    return F.normalize(tokens, dim=-1).transpose(1, 2).reshape(b, -1, *grid)
