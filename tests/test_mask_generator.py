"""The class-agnostic mask generator (stage 1 of FISA), its matcher/losses, segmentor and recall metric."""
from __future__ import annotations

import torch

from ovbench.models.heads.mask_generator import QueryMaskGenerator


def test_generator_shapes_and_interface():
    torch.manual_seed(0)
    gen = QueryMaskGenerator()
    n_params = sum(p.numel() for p in gen.parameters())
    assert 100_000 <= n_params <= 400_000, n_params
    gen.train()
    out = gen(torch.randn(2, 3, 64, 64))
    assert out["mask_logits"].shape == (2, gen.num_queries, 16, 16)
    assert out["objectness"].shape == (2, gen.num_queries)
    assert out["mask_features"].shape == (2, gen.mask_feature_dim, 16, 16)
    assert out["queries"].shape == (2, gen.num_queries, gen.query_dim)
    assert len(out["aux"]) == gen.num_layers  # initial prediction + all layers but the last
    for m, o in out["aux"]:
        assert m.shape == out["mask_logits"].shape and o.shape == out["objectness"].shape
    gen.eval()
    out = gen(torch.randn(1, 3, 96, 128))  # any size divisible by 16
    assert out["mask_logits"].shape == (1, 16, 24, 32) and "aux" not in out
