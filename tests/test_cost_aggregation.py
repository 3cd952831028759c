"""The CAT-Seg-style cost aggregator: shapes, any vocabulary size, class permutation
equivariance, windowed attention equal to full attention when one window covers the map, and
the Swin structure of spatial aggregation (W-MSA then masked SW-MSA: no token sees past its window)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovbench.models.heads.cost_aggregation import CostAggregator, SpatialAggregation, SwinBlock, guided_linear


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
    layer = SwinBlock(dim=8, guidance_dim=0, num_heads=2, window=4, shift=False)
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


def _region(r: int, ws: int, shift: int) -> int:
    """The (shifted) window of row/column ``r`` in the original frame: Swin's partition, no wrap-around."""
    return (r - shift) // ws + 1 if r >= shift else 0


def _dependence(block: SwinBlock, h: int, w: int) -> torch.Tensor:
    """``[h*w, h*w]`` bool: does output token p depend on input token q (exact Jacobian, one class)."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, h, w, 8, dtype=torch.float64)
    block = block.double()
    jac = torch.autograd.functional.jacobian(lambda t: block(t, None), x)  # [1,1,h,w,8, 1,1,h,w,8]
    return jac.reshape(h * w, 8, h * w, 8).abs().sum((1, 3)) > 0


@pytest.mark.parametrize("h,w", [(8, 8), (7, 5), (10, 12)])
def test_shifted_block_sees_only_its_masked_shifted_window(h, w):
    blk = SwinBlock(dim=8, guidance_dim=0, num_heads=2, window=4, shift=True)
    dep = _dependence(blk, h, w)
    ws, s = blk._geometry(h, w)
    pos = [(y, x) for y in range(h) for x in range(w)]
    expected = torch.tensor([[(_region(py, ws, s), _region(px, ws, s)) == (_region(qy, ws, s), _region(qx, ws, s))
                              for (qy, qx) in pos] for (py, px) in pos])
    assert s == 2
    assert torch.equal(dep, expected)
    # the example: the corner token no longer reaches the opposite corner through the roll
    assert not dep[(h - 1) * w + (w - 1), 0]


def test_unshifted_block_sees_only_its_window():
    blk = SwinBlock(dim=8, guidance_dim=0, num_heads=2, window=4, shift=False)
    dep = _dependence(blk, 8, 8)
    pos = [(y, x) for y in range(8) for x in range(8)]
    expected = torch.tensor([[(py // 4, px // 4) == (qy // 4, qx // 4) for (qy, qx) in pos] for (py, px) in pos])
    assert torch.equal(dep, expected)


def test_spatial_layer_is_two_swin_blocks_and_mixes_across_windows():
    layer = SpatialAggregation(dim=8, guidance_dim=4, num_heads=2, window=4)
    assert [b.shift for b in layer.blocks] == [0, 2]
    # a map no larger than one window is one unshifted window (Swin's rule)
    assert layer.blocks[1]._geometry(4, 6) == (4, 0)
    torch.manual_seed(0)
    x, g = torch.randn(1, 1, 8, 8, 8), torch.randn(1, 8, 8, 4)
    x2 = x.clone()
    x2[0, 0, 3, 3] += 1.0  # W-MSA window 0; SW-MSA's window [2, 6) x [2, 6) carries it to (4, 4)
    with torch.no_grad():
        d = (layer(x2, g) - layer(x, g)).abs().sum(-1)[0, 0]
    assert d[4, 4] > 0 and d[7, 7] == 0


def test_parameter_count_by_hand():
    """Each spatial layer = two Swin blocks: norm, qk (with guidance), v, proj, MLP (ratio 2)."""
    d, g, t, embed = 16, 8, 8, 16  # _aggregator(): hidden, appearance and text guidance, CLIP joint width

    def mlp(n):
        return 2 * n + (n * 2 * n + 2 * n) + (2 * n * n + n)

    swin = 2 * d + ((d + g) * 2 * d + 2 * d) + 2 * (d * d + d) + mlp(d)
    cls = 2 * d + ((d + t) * 2 * d + 2 * d) + 2 * (d * d + d) + mlp(d)
    agg = _aggregator()
    layers = sum(p.numel() for p in agg.layers.parameters())
    assert layers == 2 * (2 * swin + cls)
    inputs = (49 * d + d) + (embed * g + g) + (embed * t + t)  # 7x7 cost embedding, guidance projections
    assert sum(p.numel() for n, p in agg.named_parameters()
               if n.split(".")[0] in ("cost_embed", "appearance", "text")) == inputs


def test_guided_linear_equals_linear_of_the_concatenation():
    """The speed-up of issue 18 computes the guidance's share of q/k once; the function is unchanged."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(8 + 3, 16)
    y = torch.randn(2, 5, 4, 4, 8)
    image_guidance = torch.randn(2, 4, 4, 3)  # shared by the 5 classes
    text_guidance = torch.randn(2, 5, 3)  # shared by the 4x4 pixels
    for g in (image_guidance[:, None], text_guidance[:, :, None, None]):
        reference = linear(torch.cat([y, g.expand(2, 5, 4, 4, 3)], -1))
        torch.testing.assert_close(guided_linear(linear, y, g), reference, rtol=1e-5, atol=1e-6)
    unguided = torch.nn.Linear(8, 16)
    assert torch.equal(guided_linear(unguided, y, None), unguided(y))


def test_channels_last_decoder_matches_the_contiguous_computation():
    """The decoder runs channels-last for speed; its output must be the NCHW decoder's, up to rounding."""
    agg = _aggregator()
    dense, text, feats = _inputs()
    out = agg(dense, text, feats)
    b, c, h, w = out.shape[0], out.shape[1], dense.shape[-2], dense.shape[-1]
    x = torch.randn(b * c, agg.decoder[0].up.in_channels, h, w)
    guidance = agg._decoder_guidance(feats, h, w)
    nchw, last = x, x.contiguous(memory_format=torch.channels_last)
    for block, g in zip(agg.decoder, guidance):
        nchw = block(nchw, g.contiguous(), c)
        last = block(last, g, c)
    assert last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(last, nchw, rtol=1e-4, atol=1e-5)


def test_cost_scale_multiplies_the_cost_volume_before_its_embedding():
    """A scaled cost through the embedding conv is the raw cost through a conv with scaled weights (the
    bias untouched); nothing else in the head sees the scale."""
    dense, text, feats = _inputs(c=4)
    scaled = _aggregator(cost_scale=22.9)
    raw = _aggregator()
    with torch.no_grad():
        raw.cost_embed.weight.mul_(22.9)
        torch.testing.assert_close(scaled(dense, text, feats), raw(dense, text, feats), rtol=1e-4, atol=1e-4)
        assert not torch.allclose(scaled(dense, text, feats), _aggregator()(dense, text, feats), atol=1e-3)


@pytest.mark.parametrize("bad", [0, -1.0, "big", None, float("inf"), float("nan"), True])
def test_cost_scale_must_be_positive(bad):
    with pytest.raises(ValueError, match="cost_scale must be a finite positive number"):
        _aggregator(cost_scale=bad)
