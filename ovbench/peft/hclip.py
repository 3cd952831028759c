"""H-CLIP (Peng et al., CVPR 2025): block-diagonal transforms in hyperspherical space + DCRC.

Every adapted attention site of both encoders gets ``R = diag(R_1..R_b)``
(``q x q`` blocks): q/k/v use ``W R`` (R on the input side), the output
projection ``R W`` (output side), as in the released code. Per encoder the
blocks are either

* hard-orthogonal (``orth`` names the encoder and ``orth_lambda = inf``): the
  stored ``A`` (zero at init) gives ``S = (A - A^T)/2``, ``R = (I - S)(I + S)^-1``
  (exact solve or Neumann series) -- the paper's POF with ``orth='text'``;
* soft-orthogonal (``orth`` names it, ``0 < orth_lambda < inf``): ``R`` stored
  free (identity at init), ``lambda * sum ||R^T R - I||_F^2`` returned by
  :meth:`extra_loss` (ovbench's addition; 0 = unconstrained);
* free (identity at init).

DCRC (dual cross-relation communication): the stored tensors of both encoders
are stacked ``[layers, sites, b_img + b_txt, q, q]`` (the paper's ``[q, q, 2b,
4L]``) and mixed across blocks/modalities and across layers x sites:
``'release'`` = one identity-initialised bias-free linear map over the block
axis per depth + one over the (layer, site) axis; ``'paper'`` = a 2-layer MLP on
each axis applied as ``T + alpha * MLP(T)`` with ``alpha`` ``[2b, L]`` zero at
init (hidden width = the axis size; the paper does not give it). Where DCRC acts
(``dcrc_on``): ``'stored'`` (default) mixes the *stored* values, i.e. the text part
before the Cayley transform, as the release does; ``'rotations'`` mixes the
transforms themselves (the text part after the Cayley transform), the paper's
wording ("the R blocks ... are stacked"), which the release does not follow.

"DCRC only" (``train_blocks=False``) under each: the stored values stay at their
initialisation (image ``R = I``, text ``A = 0``) and both DCRC forms act on the
``q x q`` entries elementwise, identically for every entry position, so a mixed block
is ``a I + b 11^T`` (paper: the MLP bias gives ``b``) or ``c I`` (release). With
``'stored'`` the text part is symmetric, its skew part 0, its Cayley transform exactly
``I``: the row trains a per-block rescaling of the image side only (docs/peft.md).
With ``'rotations'`` the text blocks get the same ``a I + b 11^T`` form -- both towers
move, but the text side is no longer orthogonal. When
the towers differ in depth (ViT-L/14: 24 image, 12 text blocks) the shallower
one is zero-padded on the layer axis (its block ``i`` meets the deeper tower's
block ``i``) -- the release cannot run that case at all.

Speed: all ``R`` of the model are produced in one batched pass and cached for
the whole forward (recomputed when a parameter changes, when a backward pass
has consumed them, or when the CLIP model's ``forward`` starts), instead of the
release's re-mixing of the whole tensor inside every block. While gradients are
on, ``R`` is applied to the activations (``x R^T`` blockwise: ``tokens*d*q``
per site, no ``d x d`` weight gradient); without gradients, to the weights
when that is cheaper (``d*d*q``, once per site per forward).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.peft.config import PeftConfigError
from ovbench.peft.base import ATTN_SITES, ENCODERS, FreeCount, PeftConfig, PeftMethod, register_peft
from ovbench.peft.oft import check_block_size
from ovbench.peft.orth import (
    block_rotate,
    blockdiag_times_weight,
    cayley,
    hyperspherical_energy,
    orthogonality_penalty,
    skew,
    weight_times_blockdiag,
)

ORTH_CHOICES = {"none": (), "text": ("text",), "image": ("image",), "both": ENCODERS}


class DcrcRelease(nn.Module):
    """Released code's DCRC: identity-initialised bias-free linear maps (block axis per depth; layer x site axis)."""

    def __init__(self, layers: int, sites: int, blocks: int) -> None:
        super().__init__()
        self.block_mix = nn.Parameter(torch.eye(blocks).repeat(layers, 1, 1))  # [L, nb, nb]
        self.layer_mix = nn.Parameter(torch.eye(layers * sites))  # [L*S, L*S]

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # t [L, S, nb, q, q]
        L, S, nb, q, _ = t.shape
        t = torch.einsum("lcd,lsdx->lscx", self.block_mix, t.reshape(L, S, nb, q * q))
        t = (self.layer_mix @ t.reshape(L * S, nb * q * q)).reshape(L, S, nb, q, q)
        return t


class DcrcPaper(nn.Module):
    """Paper's DCRC: ``T <- T + alpha * MLP(T)`` over the block axis, then over the layer x site axis."""

    def __init__(self, layers: int, sites: int, blocks: int, hidden: Optional[int] = None) -> None:
        super().__init__()
        hb = hidden or blocks
        hl = hidden or layers * sites
        self.block_mlp = nn.Sequential(nn.Linear(blocks, hb), nn.GELU(), nn.Linear(hb, blocks))
        self.layer_mlp = nn.Sequential(nn.Linear(layers * sites, hl), nn.GELU(), nn.Linear(hl, layers * sites))
        self.alpha_block = nn.Parameter(torch.zeros(blocks, layers))
        self.alpha_layer = nn.Parameter(torch.zeros(blocks, layers))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        L, S, nb, q, _ = t.shape
        x = t.permute(0, 1, 3, 4, 2)  # [L, S, q, q, nb]
        tw = self.block_mlp(x).permute(0, 1, 4, 2, 3)  # [L, S, nb, q, q]
        t = t + self.alpha_block.T[:, None, :, None, None] * tw
        x = t.permute(2, 3, 4, 0, 1).reshape(nb, q, q, L * S)
        tw = self.layer_mlp(x).reshape(nb, q, q, L, S).permute(3, 4, 0, 1, 2)
        return t + self.alpha_layer.T[:, None, :, None, None] * tw


class HClipMethod(PeftMethod):
    def __init__(self, cfg: "HClipConfig", model: nn.Module) -> None:
        super().__init__(cfg, model)
        self.q: Dict[str, int] = {}
        self.nb: Dict[str, int] = {}
        self.pos: Dict[Tuple[str, int], int] = {}
        self.hard = tuple(e for e in ORTH_CHOICES[cfg.orth] if e in self.targets and math.isinf(cfg.orth_lambda))
        self.soft = tuple(
            e for e in ORTH_CHOICES[cfg.orth]
            if e in self.targets and not math.isinf(cfg.orth_lambda) and cfg.orth_lambda > 0
        )
        n_sites = len(cfg.sites)
        for enc, idx in self.targets.items():
            q = cfg.q[enc] if isinstance(cfg.q, dict) else cfg.q
            self.q[enc] = q
            self.nb[enc] = check_block_size(q, self.towers[enc].width, "q (hclip)", enc)
            for j, i in enumerate(idx):
                self.pos[(enc, i)] = j
            shape = (len(idx), n_sites, self.nb[enc], q, q)
            init = torch.zeros(shape) if enc in self.hard else torch.eye(q).expand(shape).clone()
            # train_blocks=False keeps R at its initialisation: "DCRC only" (the paper's component table)
            self.register_parameter(f"{enc}_R", nn.Parameter(init, requires_grad=cfg.train_blocks))
        self.dcrc: Optional[nn.Module] = None
        if cfg.dcrc is not None:
            if len(self.targets) != 2:
                raise PeftConfigError("peft.dcrc (hclip): DCRC mixes both encoders; it needs encoders='both'")
            if self.q["image"] != self.q["text"]:
                raise PeftConfigError(f"peft.dcrc (hclip): DCRC needs one block size for both encoders, got {self.q}")
            layers = max(len(i) for i in self.targets.values())
            blocks = self.nb["image"] + self.nb["text"]
            self.dcrc = DcrcRelease(layers, n_sites, blocks) if cfg.dcrc == "release" else DcrcPaper(
                layers, n_sites, blocks, cfg.dcrc_hidden)
        self._cache: Optional[Dict[str, torch.Tensor]] = None
        self._split: Dict[str, Any] = {}
        self._cache_key: Any = None

    def __getstate__(self):  # deepcopy / pickle: the cache holds non-leaf tensors
        state = self.__dict__.copy()
        state.update(_cache=None, _cache_key=None, _split={})
        return state

    # ---------------------------------------------------------------- R of the whole model
    def begin_forward(self) -> None:
        self._cache = None

    def _key(self) -> Any:
        return (torch.is_grad_enabled(), tuple(p._version for p in self.parameters()), self.training)

    def rotations(self) -> Dict[str, torch.Tensor]:
        """``{encoder: R [n_blocks, n_sites, b, q, q]}`` for the current parameters, computed once per forward."""
        key = self._key()
        if self._cache is not None and self._cache_key == key:
            return self._cache
        raw = {e: getattr(self, f"{e}_R") for e in self.targets}
        if self.dcrc is not None and self.cfg.dcrc_on == "stored":
            raw = self._mix(raw)
        out = {}
        for e, t in raw.items():
            out[e] = cayley(skew(t), self.cfg.cayley, self.cfg.neumann_terms) if e in self.hard else t
        if self.dcrc is not None and self.cfg.dcrc_on == "rotations":
            out = self._mix(out)
        if torch.is_grad_enabled() and any(t.requires_grad for t in out.values()):
            # once a backward pass has gone through R its graph is freed: recompute next time
            for t in out.values():
                t.register_hook(self._invalidate)
        # split once: indexing the full tensor per site would make every site's backward
        # allocate (and zero-fill) a gradient of the full tensor; unbind's backward is one stack
        self._split = {e: [t_l.unbind(0) for t_l in t.unbind(0)] for e, t in out.items()}
        self._cache, self._cache_key = out, key
        return out

    def _mix(self, t: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """DCRC over both encoders' tensors, stacked on the block axis (the shallower tower zero-padded)."""
        L = self.dcrc_layers()
        padded = [F.pad(t[e], (0, 0, 0, 0, 0, 0, 0, 0, 0, L - t[e].shape[0])) for e in ("image", "text")]
        mixed = self.dcrc(torch.cat(padded, dim=2))
        nbi = self.nb["image"]
        return {"image": mixed[: t["image"].shape[0], :, :nbi], "text": mixed[: t["text"].shape[0], :, nbi:]}

    def _invalidate(self, grad):
        self._cache = None
        return grad

    def dcrc_layers(self) -> int:
        return max(len(i) for i in self.targets.values())

    def rotation(self, key: Tuple[str, int], site: str) -> torch.Tensor:
        self.rotations()
        return self._split[key[0]][self.pos[key]][self.cfg.sites.index(site)]

    # ---------------------------------------------------------------- sites
    def site_forward(self, key, site, x, w, b):
        r = self.rotation(key, site)
        tokens = x.numel() // x.shape[-1]
        use_weight = self.cfg.compute == "weight" or (
            self.cfg.compute == "auto" and not (torch.is_grad_enabled() and r.requires_grad) and tokens > w.shape[0]
        )
        if use_weight:
            w2, _ = self._transform_weight(site, w, r)
            return F.linear(x, w2, b)
        if site == "out":  # R W: rotate the output of the frozen projection, bias after
            y = block_rotate(F.linear(x, w), r, transpose=True)
            return y if b is None else y + b
        return F.linear(block_rotate(x, r, transpose=True), w, b)  # (x R^T) W^T = x (W R)^T

    @staticmethod
    def _transform_weight(site, w, r):
        return (blockdiag_times_weight(r, w) if site == "out" else weight_times_blockdiag(w, r)), None

    def merged_weight(self, key, site, w, b):
        if site not in self.cfg.sites:
            return w, b
        return self._transform_weight(site, w, self.rotation(key, site))[0], b

    @torch.no_grad()
    def merge(self) -> None:
        self._cache = None
        with torch.no_grad():
            self.rotations()
            super().merge()

    # ---------------------------------------------------------------- accounting, losses, HE
    def free_parameters(self) -> Dict[str, FreeCount]:
        out = {}
        for e in self.hard:
            p = getattr(self, f"{e}_R")
            if not p.requires_grad:
                continue
            q = self.q[e]
            out[e] = FreeCount(p.numel(), p.numel() // (q * q) * (q * (q - 1) // 2))
        return out

    def extra_loss(self) -> Optional[torch.Tensor]:
        if not self.soft:
            return None
        rs = self.rotations()
        total = sum(orthogonality_penalty(rs[e].reshape(-1, self.q[e], self.q[e])) for e in self.soft)
        return self.cfg.orth_lambda * total

    @torch.no_grad()
    def energy_change(self) -> Dict[str, float]:
        """Relative change of hyperspherical energy ``(HE(W') - HE(W)) / HE(W)`` per encoder and site, averaged
        over the adapted blocks. Input-side orthogonal R keep it (to rounding); the output-side ``R W`` and the
        free R do not -- this logs how far they move it."""
        rs = self.rotations()
        acc: Dict[str, List[float]] = {}
        for enc, idx in self.targets.items():
            for i in idx:
                mha = self.towers[enc].blocks[i].attn
                d = mha.embed_dim
                for s, site in enumerate(self.cfg.sites):
                    w = mha.out_proj.weight if site == "out" else mha.in_proj_weight["qkv".index(site) * d:][:d]
                    w2 = self._transform_weight(site, w, rs[enc][self.pos[(enc, i)], s])[0]
                    he0 = hyperspherical_energy(w)
                    acc.setdefault(f"{enc}.{site}", []).append(float((hyperspherical_energy(w2) - he0) / he0))
        return {k: sum(v) / len(v) for k, v in acc.items()}


@register_peft("hclip")
@dataclasses.dataclass
class HClipConfig(PeftConfig):
    """``q``: block size (int or ``{'image': q, 'text': q}``); ``orth``: ``none|text|image|both``;
    ``orth_lambda``: ``inf`` hard Cayley, ``> 0`` soft penalty, ``0`` unconstrained; ``cayley``:
    ``exact|neumann``; ``dcrc``: ``None|'paper'|'release'``; ``symmetric``: ``True``/``'both'``,
    ``'image'`` or ``'text'`` (which encoders are adapted; overrides ``encoders``); ``compute``:
    ``auto|activation|weight``; ``train_blocks``: ``False`` freezes the R blocks at their
    initialisation so that only DCRC trains (the paper's "DCRC only" row, 0.01 M parameters);
    ``dcrc_on``: ``'stored'`` (release: mix before the Cayley transform) or ``'rotations'``
    (the paper's wording: mix the transforms; the only reading under which "DCRC only" moves the
    text tower, see the module docstring)."""

    q: Any = 128
    orth: str = "text"
    orth_lambda: float = float("inf")
    cayley: str = "exact"
    neumann_terms: int = 5
    dcrc: Optional[str] = None
    dcrc_hidden: Optional[int] = None
    dcrc_on: str = "stored"
    train_blocks: bool = True
    symmetric: Any = None
    compute: str = "auto"
    allowed_sites = ATTN_SITES
    method_cls = HClipMethod

    def __post_init__(self) -> None:
        if self.symmetric is not None:
            self.encoders = {True: "both", False: "image"}.get(self.symmetric, self.symmetric)
        super().__post_init__()
        if self.orth not in ORTH_CHOICES:
            raise PeftConfigError(f"peft.orth (hclip): expected one of {list(ORTH_CHOICES)}, got {self.orth!r}")
        if self.dcrc not in (None, "paper", "release"):
            raise PeftConfigError(f"peft.dcrc (hclip): expected None, 'paper' or 'release', got {self.dcrc!r}")
        if self.dcrc_on not in ("stored", "rotations"):
            raise PeftConfigError(f"peft.dcrc_on (hclip): expected 'stored' or 'rotations', got {self.dcrc_on!r}")
        if self.cayley not in ("exact", "neumann"):
            raise PeftConfigError(f"peft.cayley (hclip): expected 'exact' or 'neumann', got {self.cayley!r}")
        if self.compute not in ("auto", "activation", "weight"):
            raise PeftConfigError(f"peft.compute (hclip): expected 'auto', 'activation' or 'weight', got {self.compute!r}")
        if isinstance(self.q, dict) and set(self.q) != set(ENCODERS):
            raise PeftConfigError(f"peft.q (hclip): a dict needs exactly the keys 'image' and 'text', got {sorted(self.q)}")
        if not isinstance(self.train_blocks, bool):
            raise PeftConfigError(f"peft.train_blocks (hclip): expected true or false, got {self.train_blocks!r}")
        if not self.train_blocks and self.dcrc is None:
            raise PeftConfigError("peft.train_blocks=False (hclip) leaves nothing to train without dcrc; "
                             "set dcrc='paper' or 'release' (the 'DCRC only' setting)")
        self.orth_lambda = float(self.orth_lambda)
        if self.orth_lambda < 0:
            raise PeftConfigError(f"peft.orth_lambda (hclip): expected >= 0 or inf, got {self.orth_lambda}")
