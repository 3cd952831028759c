"""Orthogonal building blocks shared by OFT and H-CLIP.

* Cayley transform of a skew-symmetric matrix, exact (a batched linear solve)
  or by a truncated Neumann series (cheaper, approximately orthogonal).
* Block-diagonal products computed block-wise (reshape + einsum), never by
  building a dense ``d x d`` block-diagonal matrix.
* Hyperspherical energy (Liu et al. 2018, used by OFT, Qiu et al. 2023, and
  H-CLIP, Peng et al.) and the soft orthogonality penalty.

Convention (H-CLIP's released code): ``S = (A - A^T) / 2`` and
``R = (I - S)(I + S)^-1``; ``R`` is orthogonal for every skew ``S`` and equals
``I`` at ``A = 0``.
"""
from __future__ import annotations

from typing import Optional

import torch


def skew(a: torch.Tensor) -> torch.Tensor:
    """Skew-symmetric part ``(A - A^T) / 2`` over the last two dimensions."""
    return 0.5 * (a - a.transpose(-1, -2))


def skew_from_upper(vec: torch.Tensor, q: int) -> torch.Tensor:
    """``[..., q(q-1)/2]`` upper-triangle values -> skew ``[..., q, q]`` (``M - M^T``), HF PEFT's OFT storage."""
    rows, cols = torch.triu_indices(q, q, 1, device=vec.device)
    m = vec.new_zeros(*vec.shape[:-1], q, q)
    m[..., rows, cols] = vec
    return m - m.transpose(-1, -2)


def cayley(s: torch.Tensor, mode: str = "exact", terms: int = 5) -> torch.Tensor:
    """``R = (I - S)(I + S)^-1`` for a batch of skew-symmetric ``S`` ``[..., q, q]``.

    ``mode='neumann'`` replaces ``(I + S)^-1`` by ``sum_{k<terms} (-S)^k``
    (accurate while ``||S|| < 1``; orthogonal only approximately). Note that
    ``(I - S)`` and ``(I + S)^-1`` commute, so ``R = solve(I + S, I - S)``.
    """
    q = s.shape[-1]
    eye = torch.eye(q, dtype=s.dtype, device=s.device)
    if mode == "exact":
        # solved in float64: float32 loses orthogonality (~1e-5) once S grows large
        s64, eye64 = s.double(), eye.double()
        return torch.linalg.solve(eye64 + s64, eye64 - s64).to(s.dtype)
    if mode == "neumann":
        if terms < 1:
            raise ValueError(f"cayley: neumann 'terms' must be >= 1, got {terms}")
        inv = eye.expand_as(s).clone()
        power = eye.expand_as(s)
        for _ in range(1, terms):
            power = -(power @ s)
            inv = inv + power
        return (eye - s) @ inv
    raise ValueError(f"cayley: 'mode' must be 'exact' or 'neumann', got {mode!r}")


def block_rotate(x: torch.Tensor, r: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """``x @ blockdiag(r)`` (or ``x @ blockdiag(r)^T``) for ``x [..., b*q]`` and ``r [b, q, q]``."""
    b, q, _ = r.shape
    xs = x.reshape(*x.shape[:-1], b, q)
    eq = "...bi,bji->...bj" if transpose else "...bi,bij->...bj"
    return torch.einsum(eq, xs, r).reshape(x.shape)


def weight_times_blockdiag(w: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``W @ blockdiag(r)`` for ``W [out, b*q]`` (R on the input side, H-CLIP's q/k/v)."""
    b, q, _ = r.shape
    return torch.einsum("obi,bij->obj", w.reshape(w.shape[0], b, q), r).reshape(w.shape)


def blockdiag_times_weight(r: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``blockdiag(r) @ W`` for ``W [b*q, in]`` (R on the output side, H-CLIP's out projection)."""
    b, q, _ = r.shape
    return torch.einsum("bij,bjn->bin", r, w.reshape(b, q, w.shape[1])).reshape(w.shape)


def orthogonality_error(r: torch.Tensor) -> torch.Tensor:
    """``max |R^T R - I|`` over a batch of square matrices."""
    eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
    return (r.transpose(-1, -2) @ r - eye).abs().amax()


def orthogonality_penalty(r: torch.Tensor) -> torch.Tensor:
    """``sum ||R^T R - I||_F^2`` over a batch of blocks (H-CLIP's soft variant, ovbench's addition)."""
    eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
    return ((r.transpose(-1, -2) @ r - eye) ** 2).sum()


def hyperspherical_energy(w: torch.Tensor, eps: float = 1e-12, chunk: Optional[int] = 1024) -> torch.Tensor:
    """``HE(W) = sum_{i != j} 1 / ||w_i_hat - w_j_hat||`` over the neurons (rows) of ``W [out, in]``.

    Rows are the neurons of a PyTorch ``[out, in]`` weight. A right-multiplied
    orthogonal ``W R`` keeps every row's norm and every pairwise angle, hence the
    energy; a left-multiplied ``R W`` mixes neurons and in general changes it.
    Computed in float64 and in row chunks, so a 3072-row MLP weight fits memory.
    """
    wn = torch.nn.functional.normalize(w.detach().double() if not w.requires_grad else w.double(), dim=1)
    n = wn.shape[0]
    chunk = chunk or n
    total = wn.new_zeros(())
    for start in range(0, n, chunk):
        part = wn[start:start + chunk]
        d2 = (2.0 - 2.0 * part @ wn.T).clamp_min(0.0)
        idx = torch.arange(start, start + part.shape[0], device=w.device)
        d2[torch.arange(part.shape[0], device=w.device), idx] = float("inf")
        total = total + (1.0 / (d2.sqrt() + eps)).sum()
    return total
