"""PEFT core: the registry, the config base, the open_clip towers, the adapted attention, apply/merge.

Design (after HuggingFace PEFT's layout: one method per module = config
dataclass + layer logic + apply, one registry): a method is an ``nn.Module``
(:class:`PeftMethod`) attached to the CLIP model as ``model.peft_method``; it
owns every new parameter. It plugs into the frozen open_clip blocks without
renaming their parameters (pretrained checkpoints keep loading):

* attention sites ``q, k, v, out`` of ``nn.MultiheadAttention`` (``in_proj``
  packs q, k, v): the block's ``attention`` method is replaced by
  :func:`adapted_attention`, which computes each projection through
  :meth:`PeftMethod.site_forward` and runs scaled-dot-product attention;
* MLP sites ``mlp_fc`` / ``mlp_proj`` (``nn.Linear``): forward (pre-)hooks;
* anything else (position embeddings, prompt tokens): the method's own hooks.

``merge_peft`` folds the learned transform into the frozen weights and
removes every hook, leaving a plain open_clip model (frozen-model speed).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

ENCODERS = ("image", "text")
ATTN_SITES = ("q", "k", "v", "out")
MLP_SITES = ("mlp_fc", "mlp_proj")
SITE_ALIASES = {"attn": ATTN_SITES, "qkv": ("q", "k", "v"), "mlp": MLP_SITES, "all": ATTN_SITES + MLP_SITES}

#: method name -> config dataclass (its ``method_cls`` builds the module)
PEFT_METHODS: Dict[str, type] = {}


def register_peft(name: str) -> Callable[[type], type]:
    """Class decorator registering a config dataclass under ``name``."""

    def deco(cfg_cls: type) -> type:
        if name in PEFT_METHODS:
            raise KeyError(f"PEFT method {name!r} registered twice")
        cfg_cls.method_name = name
        PEFT_METHODS[name] = cfg_cls
        return cfg_cls

    return deco


# --------------------------------------------------------------------------- config
@dataclasses.dataclass
class PeftConfig:
    """Fields every method shares.

    encoders: ``'image' | 'text' | 'both'`` (or a list).
    blocks:   ``None`` (all), a list of block indices (negative allowed) for
              both encoders, or ``{'image': [...], 'text': [...]}``.
    sites:    names among ``q, k, v, out, mlp_fc, mlp_proj`` (aliases:
              ``attn``, ``qkv``, ``mlp``, ``all``).
    """

    encoders: Any = "both"
    blocks: Any = None
    sites: Any = ("q", "k", "v", "out")

    # class attributes (not fields): set by subclasses / by ``register_peft``
    allowed_sites = ATTN_SITES + MLP_SITES
    method_name = ""

    def __post_init__(self) -> None:
        self.encoders = _parse_encoders(self.encoders, self.method_name)
        self.sites = _parse_sites(self.sites, self.allowed_sites, self.method_name)

    def block_indices(self, encoder: str, n_layers: int) -> List[int]:
        spec = self.blocks
        if isinstance(spec, dict):
            unknown = set(spec) - set(ENCODERS)
            if unknown:
                raise ValueError(f"peft.blocks: unknown encoder keys {sorted(unknown)}; expected 'image'/'text'")
            spec = spec.get(encoder)
        if spec is None:
            return list(range(n_layers))
        out = []
        for i in spec:
            j = int(i) + n_layers if int(i) < 0 else int(i)
            if not 0 <= j < n_layers:
                raise ValueError(f"peft.blocks: index {i} out of range for the {encoder} encoder ({n_layers} blocks)")
            out.append(j)
        return sorted(set(out))


def _parse_encoders(value: Any, method: str) -> Tuple[str, ...]:
    if value in (None, "none"):
        return ()
    if value is True or value == "both":
        return ENCODERS
    if isinstance(value, str):
        value = [value]
    out = tuple(e for e in ENCODERS if e in set(value))
    bad = set(value) - set(ENCODERS)
    if bad:
        raise ValueError(f"peft.encoders ({method}): unknown {sorted(bad)}; expected 'image', 'text' or 'both'")
    return out


def _parse_sites(value: Any, allowed: Sequence[str], method: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    out: List[str] = []
    for s in value:
        for t in SITE_ALIASES.get(s, (s,)):
            if t not in ATTN_SITES + MLP_SITES:
                raise ValueError(
                    f"peft.sites ({method}): unknown site {s!r}; expected some of "
                    f"{list(ATTN_SITES + MLP_SITES)} or an alias {sorted(SITE_ALIASES)}"
                )
            if t not in allowed:
                raise ValueError(f"peft.sites ({method}): site {t!r} is not supported; supported: {list(allowed)}")
            if t not in out:
                out.append(t)
    return tuple(out)


def build_peft_config(cfg: Any) -> PeftConfig:
    """A dict ``{'type': name, **fields}`` (or a config object) -> the method's config dataclass."""
    if isinstance(cfg, PeftConfig):
        return cfg
    if cfg is None:
        cfg = {"type": "frozen"}
    if isinstance(cfg, str):
        cfg = {"type": cfg}
    cfg = dict(cfg)
    name = cfg.pop("type", None)
    if name not in PEFT_METHODS:
        raise KeyError(f"peft.type: unknown method {name!r}; expected one of {sorted(PEFT_METHODS)}")
    cls = PEFT_METHODS[name]
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    bad = set(cfg) - fields
    if bad:
        raise TypeError(f"peft ({name}): unknown keys {sorted(bad)}; expected some of {sorted(fields)}")
    return cls(**cfg)


# --------------------------------------------------------------------------- towers
@dataclasses.dataclass
class Tower:
    """One open_clip encoder: its transformer and the blocks' layout."""

    name: str
    transformer: nn.Module
    pos_embed: Optional[nn.Parameter]

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.resblocks

    @property
    def width(self) -> int:
        return int(self.transformer.width)

    @property
    def layers(self) -> int:
        return len(self.transformer.resblocks)


def get_towers(model: nn.Module) -> Dict[str, Tower]:
    """The image and text towers of an open_clip ``CLIP``/``CustomTextCLIP`` (or an object exposing ``.clip``)."""
    model = getattr(model, "clip", model)
    towers: Dict[str, Tower] = {}
    visual = getattr(model, "visual", None)
    if visual is not None and hasattr(visual, "transformer"):
        towers["image"] = Tower("image", visual.transformer, getattr(visual, "positional_embedding", None))
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "transformer"):
        towers["text"] = Tower("text", text.transformer, getattr(text, "positional_embedding", None))
    elif hasattr(model, "transformer") and hasattr(model, "token_embedding"):
        towers["text"] = Tower("text", model.transformer, getattr(model, "positional_embedding", None))
    if not towers:
        raise TypeError(f"peft: {type(model).__name__} is not an open_clip CLIP model (no .visual / .transformer)")
    return towers


def encoder_of_param(name: str) -> str:
    """Which encoder a parameter name of an open_clip model (+ peft method) belongs to."""
    name = name[len("clip."):] if name.startswith("clip.") else name
    if name.startswith("visual."):
        return "image"
    if name.startswith("peft_method."):
        # method parameters carry their encoder as a name prefix: image_R, lora_a.text_3_q, ...
        for part in name[len("peft_method."):].split("."):
            for enc in ENCODERS:
                if part.startswith(enc + "_"):
                    return enc
        return "shared"
    if name.startswith(("text.", "transformer.", "token_embedding", "positional_embedding", "ln_final", "text_projection")):
        return "text"
    return "shared"


# --------------------------------------------------------------------------- method base
class PeftMethod(nn.Module):
    """Base of every method: owns the new parameters, adapts the towers, merges.

    Subclasses override the hooks they need:

    * ``site_forward(key, site, x, w, b)``: output of attention site ``site``
      (``q,k,v,out``) of block ``key = (encoder, index)`` for input ``x``; the
      default is the frozen ``F.linear``.
    * ``merged_weight(key, site, w, b)``: the weights to fold in at merge.
    * ``free_parameters()``: ``{encoder: n}`` for parameters whose free count
      differs from their stored count (skew blocks).
    * ``extra_loss()``: a regulariser added to the training loss (or ``None``).
    """

    #: method-specific attention sites that need the adapted attention
    uses_attention = True

    def __init__(self, cfg: PeftConfig, model: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.towers = {k: v for k, v in get_towers(model).items() if k in cfg.encoders}
        for enc in cfg.encoders:
            if enc not in self.towers:
                raise ValueError(f"peft.encoders: the model has no {enc} transformer tower")
        self.targets: Dict[str, List[int]] = {
            enc: cfg.block_indices(enc, t.layers) for enc, t in self.towers.items()
        }
        self._handles: List[Any] = []
        self._patched: List[nn.Module] = []
        self.merged = False

    # hooks ---------------------------------------------------------------
    def site_forward(self, key: Tuple[str, int], site: str, x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
        return F.linear(x, w, b)

    def merged_weight(self, key: Tuple[str, int], site: str, w: torch.Tensor, b: Optional[torch.Tensor]):
        return w, b

    def free_parameters(self) -> Dict[str, int]:
        return {}

    def extra_loss(self) -> Optional[torch.Tensor]:
        return None

    def begin_forward(self) -> None:
        """Called once before the model's forward (and before each tower call of the wrapper)."""

    # installation --------------------------------------------------------
    def attention_sites(self) -> Tuple[str, ...]:
        return tuple(s for s in self.cfg.sites if s in ATTN_SITES)

    def install(self) -> None:
        if self.uses_attention and self.attention_sites():
            for enc, idx in self.targets.items():
                for i in idx:
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
            if "attention" in blk.__dict__:
                del blk.__dict__["attention"]
        self._patched.clear()
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the attention sites into ``in_proj``/``out_proj``; subclasses fold the rest."""
        for blk in list(self._patched):
            key = _key_of(blk)
            mha = blk.attn
            d = mha.embed_dim
            w_in, b_in = mha.in_proj_weight, mha.in_proj_bias
            for j, site in enumerate(("q", "k", "v")):
                sl = slice(j * d, (j + 1) * d)
                w, b = self.merged_weight(key, site, w_in[sl], None if b_in is None else b_in[sl])
                w_in[sl] = w
                if b is not None:
                    b_in[sl] = b
            w, b = self.merged_weight(key, "out", mha.out_proj.weight, mha.out_proj.bias)
            mha.out_proj.weight.copy_(w)
            if b is not None and mha.out_proj.bias is not None:
                mha.out_proj.bias.copy_(b)
        self.uninstall()
        self.merged = True


def _key_of(blk: nn.Module) -> Tuple[str, int]:
    part = blk.__dict__.get("attention")
    return part.args[2]


# --------------------------------------------------------------------------- adapted attention
def site_linear(block: nn.Module, site: str, x: torch.Tensor) -> torch.Tensor:
    """Projection ``site`` (q/k/v/out) of ``block``'s attention, through its PEFT method when adapted."""
    mha = block.attn
    d = mha.embed_dim
    if site == "out":
        w, b = mha.out_proj.weight, mha.out_proj.bias
    else:
        j = "qkv".index(site)
        w = mha.in_proj_weight[j * d:(j + 1) * d]
        b = None if mha.in_proj_bias is None else mha.in_proj_bias[j * d:(j + 1) * d]
    part = block.__dict__.get("attention")
    if isinstance(part, functools.partial) and part.func is adapted_attention:
        method, key = part.args[1], part.args[2]
        if site in method.attention_sites():  # e.g. 'attention' adapts q/v only, not 'out'
            return method.site_forward(key, site, x, w, b)
    return F.linear(x, w, b)


def adapted_attention(
    block: nn.Module,
    method: PeftMethod,
    key: Tuple[str, int],
    q_x: torch.Tensor,
    k_x: Optional[torch.Tensor] = None,
    v_x: Optional[torch.Tensor] = None,
    attn_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Drop-in for ``ResidualAttentionBlock.attention`` that routes q/k/v/out through ``method``."""
    mha: nn.MultiheadAttention = block.attn
    k_x = q_x if k_x is None else k_x
    v_x = q_x if v_x is None else v_x
    d, h = mha.embed_dim, mha.num_heads
    w_in, b_in = mha.in_proj_weight, mha.in_proj_bias
    sites = method.attention_sites()

    def proj(j: int, x: torch.Tensor) -> torch.Tensor:
        sl = slice(j * d, (j + 1) * d)
        w, b = w_in[sl], None if b_in is None else b_in[sl]
        site = "qkv"[j]
        return method.site_forward(key, site, x, w, b) if site in sites else F.linear(x, w, b)

    if not any(s in sites for s in "qkv") and k_x is q_x and v_x is q_x:
        q, k, v = F.linear(q_x, w_in, b_in).chunk(3, dim=-1)
    else:
        q, k, v = proj(0, q_x), proj(1, k_x), proj(2, v_x)
    if not mha.batch_first:  # [L, B, D] -> [B, L, D]
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    bsz, lq, _ = q.shape
    lk = k.shape[1]
    q = q.reshape(bsz, lq, h, d // h).transpose(1, 2)
    k = k.reshape(bsz, lk, h, d // h).transpose(1, 2)
    v = v.reshape(bsz, lk, h, d // h).transpose(1, 2)
    mask = attn_mask
    if mask is not None:
        if mask.dtype == torch.bool:  # nn.MultiheadAttention: True = not allowed
            mask = torch.zeros_like(mask, dtype=q.dtype).masked_fill(mask, float("-inf"))
        mask = mask.to(q.dtype)
        if mask.dim() == 3:  # [B*H, L, S]
            mask = mask.reshape(bsz, h, lq, lk)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=mha.dropout if mha.training else 0.0)
    o = o.transpose(1, 2).reshape(bsz, lq, d)
    if not mha.batch_first:
        o = o.transpose(0, 1)
    w, b = mha.out_proj.weight, mha.out_proj.bias
    return method.site_forward(key, "out", o, w, b) if "out" in sites else F.linear(o, w, b)


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
        for enc, (stored, free) in method.free_parameters().items():
            rows[enc]["free"] += free - stored
    rows["all"] = {k: sum(r[k] for r in rows.values()) for k in ("trainable", "free", "total")}
    return rows
