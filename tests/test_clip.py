"""OVCLIP: building, dense features at any size, intermediate layers, trainable/cached text side."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ovbench  # noqa: F401
from ovbench.models.clip import OVCLIP, TEMPLATE_SETS

CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=3, head_width=16),
    text_cfg=dict(context_length=16, width=64, heads=4, layers=2),
)


def make(**kw):
    torch.manual_seed(0)
    return OVCLIP(model_name=None, model_cfg=CFG, **kw).eval()


def test_registered_in_mmseg_models():
    from mmseg.registry import MODELS

    m = MODELS.build(dict(type="OVCLIP", model_name=None, model_cfg=CFG, peft=dict(type="lora", r=2)))
    assert isinstance(m, OVCLIP)
    assert m.clip.peft_method.cfg.r == 2


def test_dense_any_size_and_intermediates():
    m = make(out_indices=(0, -2))
    out = m.encode_image(torch.randn(2, 3, 48, 72))
    assert out["dense"].shape == (2, 32, 6, 9)
    assert out["cls"].shape == (2, 32)
    assert [tuple(f.shape) for f in out["features"]] == [(2, 64, 6, 9), (2, 64, 6, 9)]
    assert torch.allclose(out["dense"].norm(dim=1), torch.ones(2, 6, 9), atol=1e-5)


def test_native_size_matches_open_clip():
    m = make(dense="last")
    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = m.encode_image(img)
        ref = F.normalize(m.clip.encode_image(img), dim=-1)
        m.clip.visual.output_tokens = True
        _, tokens = m.clip.visual(img)
        tokens = F.normalize(tokens @ m.clip.visual.proj, dim=-1)
    assert torch.allclose(out["cls"], ref, atol=1e-5)
    assert torch.allclose(out["dense"].flatten(2).transpose(1, 2), tokens, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_synth():
    """The shipped tiny CLIP (64x64 input, 8x8 patch grid), frozen."""
    return OVCLIP(model_name="ovbench-tiny-vit", pretrained="synth").eval()


def _self_only_mask(n: int) -> torch.Tensor:
    """Additive attention mask letting every token attend only to itself: attention output = out_proj(v)."""
    mask = torch.full((n, n), float("-inf"))
    return mask.fill_diagonal_(0.0)


def _reference_dense(v, img, mode):
    """Each dense path computed directly from open_clip's own modules (no ovbench code)."""
    t = v._embeds(img)
    blocks = v.transformer.resblocks
    if mode == "last":
        v.output_tokens = True
        try:
            _, tokens = v(img)
        finally:
            v.output_tokens = False
        return F.normalize(tokens @ v.proj, dim=-1)
    if mode == "window3":
        out = []
        for y in range(8):
            for x in range(8):
                idx = [1 + min(max(y + dy, 0), 7) * 8 + min(max(x + dx, 0), 7) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
                pooled, _ = v._pool(v.transformer(t[:, [0] + idx]))
                out.append(pooled @ v.proj)
        return F.normalize(torch.stack(out, 1), dim=-1)
    for blk in blocks[:-1]:
        t = blk(t)
    last, eye = blocks[-1], _self_only_mask(t.shape[1])
    if mode == "maskclip":  # MaskCLIP: attention restricted to the value path, residual and MLP as usual
        t = last(t, attn_mask=eye)
    else:  # 'value': the (self-only) attention output alone
        y = last.ln_1(t)
        t = last.attn(y, y, y, attn_mask=eye, need_weights=False)[0]
    return F.normalize(v.ln_post(t[:, 1:]) @ v.proj, dim=-1)


@pytest.mark.parametrize("mode", ["maskclip", "value", "last", "window3"])
def test_dense_modes_match_open_clip_reference(tiny_synth, mode):
    """Every dense path of the wrapper, and the zero-shot figures' extractor (one implementation), against
    a reference built from open_clip's modules on the shipped tiny CLIP."""
    from ovbench.pretrain.zeroshot import dense_features

    img = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = tiny_synth.encode_image(img, dense=mode)["dense"].flatten(2).transpose(1, 2)
        ref = _reference_dense(tiny_synth.clip.visual, img, mode)
        zs = dense_features(tiny_synth.clip, img, mode).flatten(2).transpose(1, 2)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(zs, ours, rtol=1e-4, atol=1e-5)


def test_maskclip_and_value_paths_differ(tiny_synth):
    """MaskCLIP keeps the last block's residual and MLP; the value path drops them (issue 13: the tiny
    CLIP's two paths are far apart, so the name matters)."""
    img = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = tiny_synth.encode_image(img, dense="maskclip")["dense"]
        b = tiny_synth.encode_image(img, dense="value")["dense"]
    assert F.cosine_similarity(a, b, dim=1).mean() < 0.9


def test_dense_mode_is_validated_and_window_refuses_block_hooks():
    with pytest.raises(ValueError, match="'maskclip', 'value', 'last' or 'window<k>'"):
        make(dense="tokens")
    with pytest.raises(ValueError, match="odd k"):
        make(dense="window4")
    m = make(dense="window3")
    handle = m.clip.visual.transformer.resblocks[0].register_forward_hook(lambda *a: None)
    with pytest.raises(ValueError, match="block hooks"):
        m.encode_image(torch.randn(1, 3, 32, 32))
    handle.remove()
    assert m.encode_image(torch.randn(1, 3, 32, 32))["dense"].shape == (1, 32, 4, 4)


def test_value_and_maskclip_paths_go_through_peft():
    """The last block's v/out projections are PEFT sites in both paths: an adapter moves the features."""
    for mode in ("value", "maskclip"):
        m = make(dense=mode, peft=dict(type="lora", r=2))
        img = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            base = m.encode_image(img)["dense"]
            for n, p in m.clip.named_parameters():
                if ".lora_b." in n:
                    p.add_(0.1)
            moved = m.encode_image(img)["dense"]
        assert not torch.allclose(base, moved), mode


def test_text_cached_when_frozen_or_not_being_trained():
    m = make(templates="vild")
    a = m.encode_text(["cat", "dog"])
    assert a.shape == (2, 32) and len(m._text_cache) == 1
    assert m.encode_text(["cat", "dog"]) is a
    t = make(peft=dict(type="hclip", q=16, encoders="text"), templates="single")
    e = t.encode_text(["cat", "dog"])
    assert e.requires_grad and not t._text_cache  # being trained: never cached
    e.sum().backward()
    assert t.clip.peft_method.text_R.grad is not None
    # image-only tuning keeps the text side frozen -> cached again
    i = make(peft=dict(type="lora", encoders="image"))
    i.encode_text(["cat"])
    assert len(i._text_cache) == 1


def test_text_cache_at_evaluation_follows_vocabulary_and_weights():
    """A trained text tower is cached under no_grad (evaluation), and never served stale."""
    t = make(peft=dict(type="hclip", q=16, encoders="text"), templates="single")
    calls = []
    original = t.clip.encode_text
    t.clip.encode_text = lambda tokens: calls.append(len(tokens)) or original(tokens)
    with torch.no_grad():
        a = t.encode_text(["cat", "dog"])
        assert t.encode_text(["cat", "dog"]) is a and calls == [2]  # same vocabulary: one tower pass
        b = t.encode_text(["cat", "bird"])  # another vocabulary: its own entry
        assert calls == [2, 2] and not torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
        t.clip.peft_method.text_R.add_(torch.randn_like(t.clip.peft_method.text_R))  # an optimizer step, in place
        c = t.encode_text(["cat", "dog"])
        assert calls == [2, 2, 2] and not torch.allclose(a, c)
        state = {k: v.clone() for k, v in t.state_dict().items()}
        t.clip.peft_method.text_R.zero_()
        t.encode_text(["cat", "dog"])
        t.load_state_dict(state)  # a checkpoint load copies in place: stale entry not served
        assert torch.allclose(t.encode_text(["cat", "dog"]), c) and calls == [2, 2, 2, 2, 2]
    assert t.encode_text(["cat", "dog"]).requires_grad  # training again: computed with grad


def test_text_cache_sees_weights_swapped_through_data():
    """mmengine's EMAHook swaps averaged weights in with ``p.data.copy_``, which leaves ``_version`` as it
    was: the cache must still not serve the embeddings of the other weights."""
    t = make(peft=dict(type="hclip", q=16, encoders="text"), templates="single")
    with torch.no_grad():
        source = t.encode_text(["cat", "dog"]).clone()
        averaged = {n: p.detach() + 0.05 * torch.randn_like(p) for n, p in t.named_parameters() if p.requires_grad}
        kept = {}
        for n, p in t.named_parameters():  # EMAHook._swap_ema_parameters, in effect
            if n in averaged:
                kept[n] = p.data.clone()
                p.data.copy_(averaged[n])
        t.begin_forward()  # each test batch is a new forward: H-CLIP's per-forward rotations are recomputed
        swapped = t.encode_text(["cat", "dog"])
        assert not torch.allclose(swapped, source)
        for n, p in t.named_parameters():
            if n in kept:
                p.data.copy_(kept[n])
        t.begin_forward()
        torch.testing.assert_close(t.encode_text(["cat", "dog"]), source)


def test_templates():
    assert len(TEMPLATE_SETS["vild"]) == 14
    assert make(templates="a {} here").templates == ("a {} here",)
    with pytest.raises(ValueError, match="templates"):
        make(templates=["no slot"])


def test_peft_through_wrapper_merge_parity():
    m = make(peft=dict(type="hclip", q=16, dcrc="release", orth="both"))
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
        img = torch.randn(1, 3, 40, 40)
        a = m(img, ["cat", "dog"])
        m.merge()
        b = m(img, ["cat", "dog"])
    assert torch.allclose(a["dense"], b["dense"], atol=1e-5)
    assert torch.allclose(a["text"], b["text"], atol=1e-5)


@pytest.mark.slow
def test_builds_vit_b16_by_name():
    m = OVCLIP("ViT-B-16", pretrained=None, peft=dict(type="hclip", q=128, dcrc="release"))
    rows = __import__("ovbench.peft", fromlist=["x"]).count_parameters(m)
    assert rows["shared"]["trainable"] == 3504
    out = m.encode_image(torch.randn(1, 3, 224, 224))
    assert out["dense"].shape == (1, 512, 14, 14)


def test_deepcopy_and_state_dict_roundtrip():
    import copy

    peft = dict(type="hclip", q=16, dcrc="release", orth="both")
    m = make(peft=peft)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    img = torch.randn(1, 3, 32, 32)
    ref = m(img, ["x", "y"])["dense"]
    twin = copy.deepcopy(m)
    blk = twin.clip.visual.transformer.resblocks[0]
    assert blk.__dict__["attention"].args[:2] == (blk, twin.clip.peft_method)
    assert torch.equal(twin(img, ["x", "y"])["dense"], ref)
    fresh = make(peft=peft)
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh(img, ["x", "y"])["dense"], ref)


def test_global_embedding_follows_the_models_pooling():
    """The tiny CLIP is average-pooled: the wrapper's 'cls' must equal open_clip's own image embedding."""
    import open_clip

    from ovbench.models.clip import OVCLIP

    torch.manual_seed(0)
    wrapper = OVCLIP(model_name="ovbench-tiny-vit", pretrained=None).eval()
    assert wrapper.clip.visual.pool_type == "avg"
    img = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = wrapper.encode_image(img)["cls"]
        ref = torch.nn.functional.normalize(wrapper.clip.encode_image(img), dim=-1)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
