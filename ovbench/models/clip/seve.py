"""SEVE, semantic-guided visual encoding (FISA, Chng et al., arXiv 2409.16278 v2).

FISA injects the vocabulary's text embeddings *early* in CLIP's visual
encoder so that the patch features become aware of the fine-grained
categories in play. The paper's exact form was not public when this was
written; ovbench's reading (every choice a constructor argument):

* after each chosen block ``i`` (``blocks``, default the first two), the
  block's output tokens ``x`` cross-attend to the current vocabulary's class
  embeddings ``T`` (``[C, D]``, shared by the batch):
  ``x <- x + tanh(g) * W_o attn(W_q LN(x), W_k T, W_v T)``, a Flamingo-style
  gated cross-attention (Alayrac et al., NeurIPS 2022) with a *scalar* gate
  ``g`` per block initialised to ``gate_init`` (0: the encoder starts as the
  frozen CLIP, exactly);
* the attention runs in a small width ``dim`` (default 32, ``heads`` heads):
  per block ``2*width + (width+1)*dim + 2*(text_dim+1)*dim + (dim+1)*width + 1``
  parameters (tiny CLIP, width 128, dim 32: 16,865; ViT-B/16, width 768, text
  512: 84,321);
* ``tokens='patches'`` (default) injects into the patch tokens only, ``'all'``
  into the class token as well.

The module lives outside CLIP (the segmentor owns it) and plugs in through
forward hooks on ``ovclip.clip.visual.transformer.resblocks[i]``, so anything
that runs those blocks -- ``OVCLIP.encode_image``, the mask-token encoder --
sees the injection, and no CLIP parameter is renamed. Mask tokens
(:mod:`ovbench.models.clip.mask_tokens`) are not injected directly: they read
the injected image tokens through attention, and start from the class token,
which is injected when ``tokens='all'``.
"""
from __future__ import annotations

import functools
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovbench.models.clip.wrapper import OVCLIP


class GatedTextCrossAttention(nn.Module):
    """``x + tanh(gate) * out(attn(q(LN(x)), k(T), v(T)))`` (Flamingo's gated cross-attention, no FFN)."""

    def __init__(self, width: int, text_dim: int, dim: int = 32, heads: int = 1, gate_init: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.q = nn.Linear(width, dim)
        self.k = nn.Linear(text_dim, dim)
        self.v = nn.Linear(text_dim, dim)
        self.out = nn.Linear(dim, width)
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(self, x: Tensor, text: Tensor) -> Tensor:
        """``x``: ``[B, L, width]``; ``text``: ``[C, text_dim]`` (shared) or ``[B, C, text_dim]``."""
        b, n, _ = x.shape
        h = self.heads
        q = self.q(self.norm(x)).reshape(b, n, h, -1).transpose(1, 2)
        text = text.to(x.dtype)
        if text.dim() == 2:
            text = text.unsqueeze(0)
        c = text.shape[1]
        k = self.k(text).reshape(text.shape[0], c, h, -1).transpose(1, 2).expand(b, -1, -1, -1)
        v = self.v(text).reshape(text.shape[0], c, h, -1).transpose(1, 2).expand(b, -1, -1, -1)
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, -1)
        return x + torch.tanh(self.gate).to(x.dtype) * self.out(o)


class SEVE(nn.Module):
    """Text embeddings injected into the first blocks of CLIP's visual encoder (see the module docstring).

    Usage: ``seve = SEVE(width, text_dim); seve.attach(ovclip)``; before each
    image forward ``seve.set_text(ovclip.encode_text(class_names))``;
    ``seve.set_text(None)`` turns the injection off (plain CLIP).

    Args:
        width: the visual transformer's width (``ovclip.clip.visual.transformer.width``).
        text_dim: the class embeddings' dimension (``ovclip.embed_dim``).
        blocks: indices of the blocks whose *outputs* receive the text (negative allowed).
        dim: inner width of the cross-attention.
        heads: attention heads (must divide ``dim``).
        gate_init: initial value of each block's scalar gate (``tanh(gate_init)`` scales the injection).
        tokens: ``'patches'`` (patch tokens only) or ``'all'`` (class token too).
    """

    def __init__(
        self,
        width: int,
        text_dim: int,
        blocks: Sequence[int] = (0, 1),
        dim: int = 32,
        heads: int = 1,
        gate_init: float = 0.0,
        tokens: str = "patches",
    ) -> None:
        super().__init__()
        if tokens not in ("patches", "all"):
            raise ValueError(f"SEVE.tokens: expected 'patches' or 'all', got {tokens!r}")
        if int(dim) < 1 or int(heads) < 1 or int(dim) % int(heads):
            raise ValueError(f"SEVE.heads: {heads} heads must divide dim={dim} (both positive integers)")
        blocks = tuple(int(i) for i in blocks)
        if not blocks:
            raise ValueError("SEVE.blocks: expected at least one block index, got none")
        if len(set(blocks)) != len(blocks):
            raise ValueError(f"SEVE.blocks: duplicate block indices in {blocks}")
        self.width, self.text_dim, self.dim, self.heads = int(width), int(text_dim), int(dim), int(heads)
        self.blocks = blocks
        self.tokens = tokens
        self.layers = nn.ModuleList(
            GatedTextCrossAttention(self.width, self.text_dim, self.dim, self.heads, gate_init) for _ in blocks
        )
        self._text: Optional[Tensor] = None
        self._handles: List = []
        self.attached_blocks: tuple = ()

    def __getstate__(self):  # deepcopy / pickle: the text may be a non-leaf tensor of another graph
        state = self.__dict__.copy()
        state["_text"] = None
        return state

    # ------------------------------------------------------------------ plumbing
    def attach(self, ovclip: OVCLIP) -> None:
        """Register the forward hooks on ``ovclip``'s visual blocks (one SEVE per block at most)."""
        if self._handles:
            raise RuntimeError(f"SEVE: already attached to blocks {self.attached_blocks}; call detach() first")
        transformer = ovclip.clip.visual.transformer
        resblocks = transformer.resblocks
        n = len(resblocks)
        width = int(getattr(transformer, "width", self.width))
        if width != self.width:
            raise ValueError(f"SEVE.width: built for width {self.width}, but the visual encoder's width is {width}")
        resolved = []
        for i in self.blocks:
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise ValueError(f"SEVE.blocks: index {i} out of range for a visual encoder with {n} blocks")
            resolved.append(j)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"SEVE.blocks: {self.blocks} name the same block twice for {n} blocks")
        for j in resolved:
            for hook in resblocks[j]._forward_hooks.values():
                if isinstance(hook, functools.partial) and isinstance(getattr(hook.func, "__self__", None), SEVE):
                    raise RuntimeError(f"SEVE: visual block {j} already has a SEVE attached; detach it first")
        for pos, j in enumerate(resolved):
            self._handles.append(resblocks[j].register_forward_hook(functools.partial(self._inject, pos)))
        self.attached_blocks = tuple(resolved)

    def detach(self) -> None:
        """Remove the hooks: the visual encoder is plain CLIP again."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.attached_blocks = ()

    def set_text(self, text: Optional[Tensor]) -> None:
        """The current vocabulary: ``[C, text_dim]`` class embeddings (shared by the batch), or None (off).

        A ``[B, C, text_dim]`` tensor gives each image its own vocabulary. The
        tensor is kept as given (no detach), so a trainable text encoder
        receives gradients through the injection.
        """
        if text is not None:
            if not isinstance(text, Tensor) or text.dim() not in (2, 3) or text.shape[-1] != self.text_dim:
                shape = tuple(text.shape) if isinstance(text, Tensor) else type(text).__name__
                raise ValueError(f"SEVE.set_text: expected [C, {self.text_dim}] class embeddings, got {shape}")
        self._text = text

    # ------------------------------------------------------------------ hook
    def _inject(self, pos: int, module: nn.Module, args, out: Tensor) -> Optional[Tensor]:
        if self._text is None:
            return None
        bf = getattr(module.attn, "batch_first", True)
        x = out if bf else out.transpose(0, 1)
        text = self._text
        if text.dim() == 3 and text.shape[0] != x.shape[0]:
            raise ValueError(f"SEVE: per-image text for {text.shape[0]} images, but the batch has {x.shape[0]}")
        layer = self.layers[pos]
        if self.tokens == "all":
            y = layer(x, text)
        else:
            y = torch.cat([x[:, :1], layer(x[:, 1:], text)], dim=1)
        return y if bf else y.transpose(0, 1)

    def extra_repr(self) -> str:
        return (f"width={self.width}, text_dim={self.text_dim}, blocks={self.blocks}, dim={self.dim}, "
                f"heads={self.heads}, tokens={self.tokens!r}, attached={self.attached_blocks}")
