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


def test_maskclip_value_path():
    m = make(dense="maskclip")
    img = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = m.encode_image(img)["dense"]
        v = m.clip.visual
        x = v.ln_pre(_embed(v, img))
        for blk in v.transformer.resblocks[:-1]:
            x = blk(x)
        last = v.transformer.resblocks[-1]
        d = last.attn.embed_dim
        y = F.linear(last.ln_1(x[:, 1:]), last.attn.in_proj_weight[2 * d:], last.attn.in_proj_bias[2 * d:])
        y = F.normalize(v.ln_post(last.attn.out_proj(y)) @ v.proj, dim=-1)
    assert torch.allclose(out.flatten(2).transpose(1, 2), y, atol=1e-5)


def _embed(v, img):
    x = v.conv1(img).flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], 1)
    return x + v.positional_embedding


def test_text_cached_only_when_frozen():
    m = make(templates="vild")
    a = m.encode_text(["cat", "dog"])
    assert a.shape == (2, 32) and len(m._text_cache) == 1
    assert m.encode_text(["cat", "dog"]) is a
    t = make(peft=dict(type="hclip", q=16, encoders="text"), templates="single")
    e = t.encode_text(["cat", "dog"])
    assert e.requires_grad and not t._text_cache
    e.sum().backward()
    assert t.clip.peft_method.text_R.grad is not None
    # image-only tuning keeps the text side frozen -> cached again
    i = make(peft=dict(type="lora", encoders="image"))
    i.encode_text(["cat"])
    assert len(i._text_cache) == 1


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
