"""PEFT core: the method base (site plumbing, merge), the one attention kernel, apply/merge (config: config.py; towers: towers.py).

Design (after HuggingFace PEFT's layout: one method per module = config
dataclass + layer logic + apply, one registry): a method is an ``nn.Module``
(:class:`PeftMethod`) attached to the CLIP model as ``model.peft_method``; it
owns every new parameter. It plugs into the frozen open_clip blocks without
renaming their parameters (pretrained checkpoints keep loading):

* attention sites ``q, k, v, out`` of ``nn.MultiheadAttention`` (``in_proj``
  packs q, k, v): the block's ``attention`` method is replaced by
  :func:`adapted_attention`, which computes each projection through
  :meth:`PeftMethod.site_forward` and runs scaled-dot-product attention;
* MLP sites ``mlp_fc`` / ``mlp_proj`` (``nn.Linear``): the layer's ``forward`` is shadowed by
  one that calls :meth:`PeftMethod.site_forward`;
* anything else (position embeddings, prompt tokens): the method's own hooks.

``merge_peft`` folds the learned transform into the frozen weights and
removes every hook, leaving a plain open_clip model (frozen-model speed).
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ovbench.peft.config import (  # noqa: F401  (re-exported: the base of every method module)
    ATTN_SITES,
    ENCODERS,
    MLP_SITES,
    PEFT_METHODS,
    SITE_ALIASES,
    PeftConfig,
    PeftConfigError,
    build_peft_config,
    register_peft,
)
from ovbench.peft.towers import Tower, encoder_of_param, get_towers  # noqa: F401  (re-exported)


# --------------------------------------------------------------------------- method base
class FreeCount(NamedTuple):
    """Stored and free parameter counts of one encoder's constrained tensors (a skew ``q x q`` block
    stores ``q^2`` values but has ``q(q-1)/2`` degrees of freedom)."""

    stored: int
    free: int


class PeftMethod(nn.Module):
    """Base of every method: owns the new parameters; the base does the plumbing, a method the maths.

    The base installs the method on the chosen sites of the chosen blocks (attention ``q, k, v, out``
    through :func:`adapted_attention`, MLP ``mlp_fc, mlp_proj`` by shadowing the ``nn.Linear``'s
    ``forward``), folds it in at :meth:`merge` and removes every hook. A method supplies its
    parameters (in ``__init__``) and its maths, as in HuggingFace PEFT's ``BaseTunerLayer``:

    * ``site_forward(key, site, x, w, b)``: the adapted output of site ``site`` of block
      ``key = (encoder, index)`` for input ``x`` and frozen ``w, b``;
    * ``merged_weight(key, site, w, b)``: the frozen weights with the method folded in.

    Optional hooks (defaults do nothing / the frozen thing):

    * ``free_parameters()``: ``{encoder: FreeCount(stored, free)}`` for constrained tensors;
    * ``extra_loss()``: a regulariser the segmentor adds to the training loss;
    * ``begin_forward()``: a forward of the whole CLIP model starts (drop per-forward caches);
    * ``mask_query(key, x, w, b)``: the query projection of mask tokens (default: the image tokens');
    * ``key_weight(key, n_keys, like)``: per-key factors on the attention weights before
      renormalisation (VPT's gate), or None.
    """

    #: whether the method adapts attention / MLP sites through the base's plumbing
    uses_attention = True

    def __init__(self, cfg: PeftConfig, model: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.towers = {k: v for k, v in get_towers(model).items() if k in cfg.encoders}
        for enc in cfg.encoders:
            if enc not in self.towers:
                raise PeftConfigError(f"peft.encoders: the model has no {enc} transformer tower")
        self.targets: Dict[str, List[int]] = {
            enc: cfg.block_indices(enc, t.layers) for enc, t in self.towers.items()
        }
        self._handles: List[Any] = []
        self._patched: List[nn.Module] = []
        self._patched_linears: List[Tuple[Tuple[str, int], str, nn.Linear]] = []
        self.merged = False

    # maths (a method overrides these) ------------------------------------
    def site_forward(self, key: SiteKey, site: str, x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
        return F.linear(x, w, b)

    def merged_weight(self, key: SiteKey, site: str, w: Tensor, b: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        return w, b

    # optional hooks ------------------------------------------------------
    def free_parameters(self) -> Dict[str, FreeCount]:
        return {}

    def extra_loss(self) -> Optional[Tensor]:
        return None

    def begin_forward(self) -> None:
        """A forward of the whole model starts (``apply_peft``'s pre-hook on the CLIP model; ``OVCLIP``
        calls it once before its towers run)."""

    def mask_query(self, key: SiteKey, x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
        """Queries of mask tokens ``x`` in image block ``key`` (frozen ``w, b`` = ``W_q, b_q``): by default
        the image tokens' query projection; SIMO gives mask tokens their own."""
        return self.project(key, "q", x, w, b)

    def key_weight(self, key: SiteKey, n_keys: int, like: Tensor) -> Optional[Tensor]:
        return None

    # sites ---------------------------------------------------------------
    def attention_sites(self) -> Tuple[str, ...]:
        return tuple(s for s in self.cfg.sites if s in ATTN_SITES)

    def mlp_sites(self) -> Tuple[str, ...]:
        return tuple(s for s in self.cfg.sites if s in MLP_SITES)

    def project(self, key: SiteKey, site: str, x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
        """Site ``site`` of block ``key``: adapted when this method adapts it there, else frozen."""
        adapted = key[1] in self.targets.get(key[0], ()) and self.uses_attention and site in self.attention_sites()
        return self.site_forward(key, site, x, w, b) if adapted else F.linear(x, w, b)

    def site_dims(self, key: SiteKey, site: str) -> Tuple[int, int]:
        """``(in, out)`` features of a site (attention sites: the tower width)."""
        lin = mlp_linear(self.towers[key[0]].blocks[key[1]], site)
        d = self.towers[key[0]].width
        return (lin.in_features, lin.out_features) if lin is not None else (d, d)

    def site_keys(self) -> Iterable[Tuple[SiteKey, str]]:
        """Every adapted ``(block key, site)``, in a fixed order (parameter creation follows it)."""
        for enc, idx in self.targets.items():
            for i in idx:
                for site in self.cfg.sites:
                    yield (enc, i), site

    # installation --------------------------------------------------------
    def install(self) -> None:
        if not self.uses_attention:
            return
        for enc, idx in self.targets.items():
            for i in idx:
                if self.attention_sites():
                    self.patch_attention(enc, i)
                for site in self.mlp_sites():
                    lin = mlp_linear(self.towers[enc].blocks[i], site)
                    # an instance attribute shadows nn.Linear.forward; no parameter is renamed
                    lin.forward = functools.partial(self._linear_forward, (enc, i), site, lin)
                    self._patched_linears.append(((enc, i), site, lin))

    def _linear_forward(self, key: SiteKey, site: str, lin: nn.Linear, x: Tensor) -> Tensor:
        return self.site_forward(key, site, x, lin.weight, lin.bias)

    def patch_attention(self, enc: str, i: int) -> None:
        """Route block ``i`` of ``enc``'s attention through :func:`adapted_attention` (and this method)."""
        blk = self.towers[enc].blocks[i]
        if not isinstance(getattr(blk, "attn", None), nn.MultiheadAttention) or not hasattr(blk, "attention"):
            raise TypeError(
                f"peft ({self.cfg.method_name}): {enc} block {i} is a {type(blk).__name__}; attention "
                "sites need open_clip's ResidualAttentionBlock with nn.MultiheadAttention"
            )
        if getattr(blk.attn, "_qkv_same_embed_dim", True) is False:
            raise TypeError(f"peft: {enc} block {i}: separate q/k/v projections are not supported")
        # an instance attribute shadows ResidualAttentionBlock.attention; no parameter is renamed
        blk.attention = functools.partial(adapted_attention, blk, self, (enc, i))
        self._patched.append(blk)

    def uninstall(self) -> None:
        for blk in self._patched:
            blk.__dict__.pop("attention", None)
        for _, _, lin in self._patched_linears:
            lin.__dict__.pop("forward", None)
        self._patched.clear()
        self._patched_linears.clear()
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @torch.no_grad()
    def merge(self) -> None:
        """Fold every adapted site into the frozen weights (``merged_weight``), then uninstall."""
        for blk in list(self._patched):
            key, mha = _key_of(blk), blk.attn
            for site in self.attention_sites():
                w, b = attention_weights(mha, site)
                w2, b2 = self.merged_weight(key, site, w, b)
                w.copy_(w2)
                if b is not None and b2 is not None:
                    b.copy_(b2)
        for key, site, lin in self._patched_linears:
            w2, b2 = self.merged_weight(key, site, lin.weight, lin.bias)
            lin.weight.copy_(w2)
            if lin.bias is not None and b2 is not None:
                lin.bias.copy_(b2)
        self.uninstall()
        self.merged = True


SiteKey = Tuple[str, int]


def mlp_linear(block: nn.Module, site: str) -> Optional[nn.Linear]:
    """The ``nn.Linear`` of MLP site ``mlp_fc`` / ``mlp_proj`` of an open_clip block (None for attention sites)."""
    if site not in MLP_SITES:
        return None
    return block.mlp.c_fc if site == "mlp_fc" else block.mlp.c_proj


def attention_weights(mha: nn.MultiheadAttention, site: str) -> Tuple[Tensor, Optional[Tensor]]:
    """Views of site ``site``'s weight and bias (``q, k, v`` are slices of the packed ``in_proj``)."""
    if site == "out":
        return mha.out_proj.weight, mha.out_proj.bias
    d, j = mha.embed_dim, "qkv".index(site)
    b_in = mha.in_proj_bias
    return mha.in_proj_weight[j * d:(j + 1) * d], None if b_in is None else b_in[j * d:(j + 1) * d]


def _key_of(blk: nn.Module) -> SiteKey:
    part = blk.__dict__.get("attention")
    return part.args[2]


# --------------------------------------------------------------------------- the attention kernel
def attend(q: Tensor, k: Tensor, v: Tensor, heads: int, mask: Optional[Tensor] = None, dropout_p: float = 0.0,
           key_weight: Optional[Tensor] = None) -> Tensor:
    """Multi-head attention of ``q [B, Lq, D]`` over ``k, v [B, Lk, D]`` -> ``[B, Lq, D]``: the one kernel
    of the adapted blocks, VPT's gated prompts and the mask tokens.

    ``mask``: additive, ``[Lq, Lk]``, ``[B, Lq, Lk]`` or ``[B, heads, Lq, Lk]``. ``key_weight`` ``[Lk]``
    multiplies each key's attention weight before renormalisation (zero-init gating, LLaMA-Adapter,
    Zhang et al. 2023); the weights are then computed explicitly (no dropout).
    """
    bsz, lq, d = q.shape
    lk = k.shape[1]
    q = q.reshape(bsz, lq, heads, d // heads).transpose(1, 2)
    k = k.reshape(bsz, lk, heads, d // heads).transpose(1, 2)
    v = v.reshape(bsz, lk, heads, d // heads).transpose(1, 2)
    if mask is not None and mask.dim() == 3:
        mask = mask.unsqueeze(1)
    if key_weight is None:
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    else:
        s = (q @ k.transpose(-1, -2)) * (d // heads) ** -0.5
        if mask is not None:
            s = s + mask
        e = torch.exp(s - s.amax(dim=-1, keepdim=True)) * key_weight
        o = (e / e.sum(dim=-1, keepdim=True)) @ v
    return o.transpose(1, 2).reshape(bsz, lq, d)


def block_method(block: nn.Module) -> Tuple[Optional[PeftMethod], SiteKey]:
    """The PEFT method whose attention ``block`` runs, and the block's key (``(None, ...)`` when plain)."""
    part = block.__dict__.get("attention")
    if isinstance(part, functools.partial) and part.func is adapted_attention:
        return part.args[1], part.args[2]
    return None, ("image", 0)


def site_linear(block: nn.Module, site: str, x: Tensor) -> Tensor:
    """Projection ``site`` (q/k/v/out) of ``block``'s attention, through its PEFT method when adapted."""
    w, b = attention_weights(block.attn, site)
    method, key = block_method(block)
    return F.linear(x, w, b) if method is None else method.project(key, site, x, w, b)


def adapted_attention(
    block: nn.Module,
    method: PeftMethod,
    key: SiteKey,
    q_x: Tensor,
    k_x: Optional[Tensor] = None,
    v_x: Optional[Tensor] = None,
    attn_mask: Optional[Tensor] = None,
) -> Tensor:
    """Drop-in for ``ResidualAttentionBlock.attention`` that routes q/k/v/out through ``method``."""
    mha: nn.MultiheadAttention = block.attn
    k_x = q_x if k_x is None else k_x
    v_x = q_x if v_x is None else v_x
    if not any(s in method.attention_sites() for s in "qkv") and k_x is q_x and v_x is q_x:
        q, k, v = F.linear(q_x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    else:
        q, k, v = (method.project(key, s, x, *attention_weights(mha, s)) for s, x in zip("qkv", (q_x, k_x, v_x)))
    if not mha.batch_first:  # [L, B, D] -> [B, L, D]
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    mask = attn_mask
    if mask is not None:
        if mask.dtype == torch.bool:  # nn.MultiheadAttention: True = not allowed
            mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask, float("-inf"))
        mask = mask.to(q.dtype)
        if mask.dim() == 3:  # [B*H, L, S]
            mask = mask.reshape(q.shape[0], mha.num_heads, q.shape[1], k.shape[1])
    o = attend(q, k, v, mha.num_heads, mask, mha.dropout if mha.training else 0.0,
               method.key_weight(key, k.shape[1], q))
    if not mha.batch_first:
        o = o.transpose(0, 1)
    return method.project(key, "out", o, mha.out_proj.weight, mha.out_proj.bias)


# --------------------------------------------------------------------------- public API
def _root(model: nn.Module) -> nn.Module:
    return getattr(model, "clip", model)


def apply_peft(model: nn.Module, cfg: Any) -> PeftMethod:
    """Freeze the CLIP model, attach the method built from ``cfg`` and return it.

    ``model``: an open_clip CLIP (or a wrapper with ``.clip``). The method is
    stored as ``clip.peft_method`` so its parameters are part of the model's
    ``state_dict`` and optimiser groups.
    """
    cfg = build_peft_config(cfg)
    clip = _root(model)
    if getattr(clip, "peft_method", None) is not None:
        raise RuntimeError("apply_peft: this model already has a PEFT method; merge or rebuild it first")
    for p in clip.parameters():
        p.requires_grad_(False)
    method = cfg.method_cls(cfg, clip)
    clip.peft_method = method
    method.install()
    hook = clip.register_forward_pre_hook(lambda m, a: method.begin_forward())
    method._handles.append(hook)
    return method


def get_peft_method(model: nn.Module) -> Optional[PeftMethod]:
    return getattr(_root(model), "peft_method", None)


def merge_peft(model: nn.Module) -> nn.Module:
    """Fold the method into the frozen weights and detach it: the model runs at frozen speed."""
    clip = _root(model)
    method = get_peft_method(clip)
    if method is None:
        return model
    method.merge()
    del clip.peft_method
    return model


def regularization_loss(model: nn.Module) -> Optional[torch.Tensor]:
    """The method's extra loss term (H-CLIP's soft orthogonality), or ``None``."""
    method = get_peft_method(model)
    return None if method is None else method.extra_loss()


def count_parameters(model: nn.Module) -> Dict[str, Dict[str, int]]:
    """Per encoder (``image``, ``text``, ``shared``, ``all``): trainable (stored), free and total parameters.

    *Free* counts the degrees of freedom: a skew-symmetric ``q x q`` block
    stores ``q^2`` values but has ``q(q-1)/2`` free ones.
    """
    clip = _root(model)
    rows = {e: {"trainable": 0, "free": 0, "total": 0} for e in ENCODERS + ("shared",)}
    for name, p in clip.named_parameters():
        enc = encoder_of_param(name)
        rows[enc]["total"] += p.numel()
        if p.requires_grad:
            rows[enc]["trainable"] += p.numel()
            rows[enc]["free"] += p.numel()
    method = get_peft_method(clip)
    if method is not None:
        for enc, count in method.free_parameters().items():
            rows[enc]["free"] += count.free - count.stored
    rows["all"] = {k: sum(r[k] for r in rows.values()) for k in ("trainable", "free", "total")}
    return rows
