"""The CAT-Seg-style cost aggregator: shapes, any vocabulary size, class permutation
equivariance, and windowed attention equal to full attention when one window covers the map."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovbench.models.heads.cost_aggregation import CostAggregator, SpatialAggregation


def _aggregator(**kw) -> CostAggregator:
    torch.manual_seed(0)
    args = dict(embed_dim=16, clip_width=24, hidden_dim=16, num_layers=2, num_heads=2, window=4,
                appearance_guidance_dim=8, text_guidance_dim=8, decoder_dims=(8, 8), decoder_guidance_dims=(4, 4))
    args.update(kw)
    return CostAggregator(**args).eval()


def _inputs(b=2, c=5, h=6, w=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(b, 16, h, w, generator=g)
    text = torch.randn(c, 16, generator=g)
    feats = [torch.randn(b, 24, h, w, generator=g) for _ in range(2)]
    return dense, text, feats


def test_output_shape_and_any_vocabulary_size():
    agg = _aggregator()
    for c in (1, 5, 13):
        dense, text, feats = _inputs(c=c)
        assert agg(dense, text, feats).shape == (2, c, 24, 24)


def test_classes_are_permutation_equivariant():
    agg = _aggregator()
    dense, text, feats = _inputs(c=7)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = agg(dense, text, feats)
        out_perm = agg(dense, text[perm], feats)
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-4, atol=1e-5)


def test_cost_volume_is_cosine_similarity():
    dense, text, _ = _inputs(b=1, c=3, h=2, w=2)
    cost = CostAggregator.cost_volume(dense, text)
    expected = F.cosine_similarity(dense[0, :, 1, 0][None], text, dim=-1)
    torch.testing.assert_close(cost[0, :, 1, 0], expected)


def test_single_window_equals_full_attention():
    torch.manual_seed(0)
    layer = SpatialAggregation(dim=8, guidance_dim=0, num_heads=2, window=4, shift=False)
    q, k, v = (torch.randn(1, 3, 4, 4, 8) for _ in range(3))
    windowed = layer._window_attention(q, k, v)

    def flat(t):
        return t.reshape(3, 16, 2, 4).transpose(1, 2)

    full = F.scaled_dot_product_attention(flat(q), flat(k), flat(v)).transpose(1, 2).reshape(1, 3, 4, 4, 8)
    torch.testing.assert_close(windowed, full, rtol=1e-5, atol=1e-6)


def test_padding_and_shift_handle_maps_not_divisible_by_the_window():
    agg = _aggregator(window=4)
    dense, text, feats = _inputs(h=7, w=5)
    out = agg(dense, text, feats)
    assert out.shape == (2, 5, 28, 20) and torch.isfinite(out).all()


def test_gradients_reach_every_parameter():
    agg = _aggregator().train()
    dense, text, feats = _inputs()
    agg(dense, text, feats).sum().backward()
    missing = [n for n, p in agg.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_missing_guidance_features_are_named():
    agg = _aggregator()
    dense, text, _ = _inputs()
    with pytest.raises(ValueError, match="out_indices"):
        agg(dense, text, [])
