"""FISA's CLIP-side pieces: SEVE (text injection), mask-token embeddings, SIMO (query-only PEFT)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ovbench  # noqa: F401  (shims first)
from ovbench.models.clip import SEVE, OVCLIP, encode_with_mask_tokens
from ovbench.models.clip.mask_tokens import mask_patch_bias, mask_token_bias, mask_token_block
from ovbench.peft import build_peft_config, count_parameters, get_peft_method

D = 128  # tiny CLIP: width 128, embed 128, 4 image blocks, 64x64 images, 8x8 patch grid
CLASSES = ["sky", "tree", "road"]


def make(peft=None) -> OVCLIP:
    torch.manual_seed(0)
    return OVCLIP(model_name="ovbench-tiny-vit", pretrained="synth", templates="a scene with {}.", peft=peft).eval()


@pytest.fixture(scope="module")
def clip() -> OVCLIP:
    return make()


def images(b=2, seed=1):
    return torch.randn(b, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def region_masks():
    """Two masks per image at 32x32: the top-left quadrant and everything."""
    m = torch.zeros(2, 2, 32, 32)
    m[:, 0, :16, :16] = 1
    m[:, 1] = 1
    return m


def perturb(module, scale=0.05, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g))


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in ("cls", "dense")) and all(
        torch.equal(x, y) for x, y in zip(a["features"], b["features"]))


def close(a, b, atol=1e-5):
    return all(torch.allclose(a[k], b[k], atol=atol) for k in a if k != "features")


# --------------------------------------------------------------------------- SEVE
def test_seve_gate_zero_is_exact_identity_and_none_disables(clip):
    img = images()
    with torch.no_grad():
        ref = clip.encode_image(img, out_indices=(0, 1, 3))
        text = clip.encode_text(CLASSES)
    seve = SEVE(D, D, blocks=(0, 1))
    seve.attach(clip)
    try:
        seve.set_text(text)
        clip.encode_image(img)["dense"].square().sum().backward()
        for layer in seve.layers:  # Flamingo's zero gate: only the gate moves at the first step
            assert layer.gate.grad.abs() > 0 and layer.out.weight.grad.abs().sum() == 0
        with torch.no_grad():
            assert same(clip.encode_image(img, out_indices=(0, 1, 3)), ref)
            with torch.no_grad():
                for layer in seve.layers:
                    layer.gate.fill_(0.5)
            changed = clip.encode_image(img, out_indices=(0, 1, 3))
            assert (changed["dense"] - ref["dense"]).abs().max() > 1e-3
            assert (changed["features"][0] - ref["features"][0]).abs().max() > 1e-3
            seve.set_text(None)
            assert same(clip.encode_image(img, out_indices=(0, 1, 3)), ref)
    finally:
        seve.detach()
    seve.set_text(text)  # detached: the text no longer matters
    with torch.no_grad():
        assert same(clip.encode_image(img, out_indices=(0, 1, 3)), ref)


@pytest.mark.parametrize("tokens", ["patches", "all"])
def test_seve_tokens_and_gradients(clip, tokens):
    img = images(1)
    text = clip.encode_text(CLASSES)
    seve = SEVE(D, D, blocks=(-4,), dim=16, heads=2, gate_init=0.3, tokens=tokens)
    grabbed = {}
    blk = clip.clip.visual.transformer.resblocks[0]
    with torch.no_grad():
        h = blk.register_forward_hook(lambda m, a, o: grabbed.setdefault("plain", o))
        clip.encode_image(img)
        h.remove()
    seve.attach(clip)
    assert seve.attached_blocks == (0,)
    h = blk.register_forward_hook(lambda m, a, o: grabbed.setdefault("seve", o))  # fires after SEVE's hook
    try:
        seve.set_text(text)
        out = clip.encode_image(img)
        out["dense"].square().sum().backward()
    finally:
        h.remove()
        seve.detach()
    plain, injected = grabbed["plain"], grabbed["seve"]
    assert (plain[:, 1:] - injected[:, 1:]).abs().max() > 1e-4
    cls_same = torch.equal(plain[:, :1], injected[:, :1])
    assert cls_same == (tokens == "patches")
    for name, p in seve.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_seve_attach_errors_and_parameter_count(clip):
    seve = SEVE(D, D, blocks=(0, 1), dim=32)
    per_block = 2 * D + (D + 1) * 32 + 2 * (D + 1) * 32 + (32 + 1) * D + 1
    assert sum(p.numel() for p in seve.parameters()) == 2 * per_block
    assert 2 * per_block < 0.05 * sum(p.numel() for p in clip.parameters())
    with pytest.raises(ValueError, match="out of range"):
        SEVE(D, D, blocks=(4,)).attach(clip)
    with pytest.raises(ValueError, match="same block"):
        SEVE(D, D, blocks=(0, -4)).attach(clip)
    with pytest.raises(ValueError, match="heads"):
        SEVE(D, D, dim=30, heads=4)
    with pytest.raises(ValueError, match="tokens"):
        SEVE(D, D, tokens="cls")
    with pytest.raises(ValueError, match=r"\[C, 128\]"):
        seve.set_text(torch.zeros(3, 64))
    seve.attach(clip)
    try:
        with pytest.raises(RuntimeError, match="already attached"):
            seve.attach(clip)
        with pytest.raises(RuntimeError, match="block 1 already has a SEVE"):
            SEVE(D, D, blocks=(1, 2)).attach(clip)
    finally:
        seve.detach()
    assert not any(blk._forward_hooks for blk in clip.clip.visual.transformer.resblocks)


def _seq_first_copy(clip: OVCLIP) -> OVCLIP:
    """The same model with a sequence-first (``batch_first=False``) visual transformer."""
    from open_clip.transformer import Transformer

    other = make()
    t = clip.clip.visual.transformer
    lnd = Transformer(t.width, t.layers, t.resblocks[0].attn.num_heads, batch_first=False)
    lnd.load_state_dict(t.state_dict())
    other.clip.visual.transformer = lnd.eval().requires_grad_(False)
    return other


def test_seve_and_mask_tokens_sequence_first_layout(clip):
    lnd = _seq_first_copy(clip)
    img, masks = images(), region_masks()
    text = clip.encode_text(CLASSES)
    outs = []
    for model in (clip, lnd):
        seve = SEVE(D, D, gate_init=0.5)
        torch.manual_seed(5)
        seve.load_state_dict(SEVE(D, D, gate_init=0.5).state_dict())
        seve.attach(model)
        seve.set_text(text)
        try:
            with torch.no_grad():
                outs.append(encode_with_mask_tokens(model, img, masks, num_blocks=3))
        finally:
            seve.detach()
    assert close(outs[0], outs[1], atol=1e-5)


# --------------------------------------------------------------------------- mask tokens
def test_mask_tokens_leave_image_outputs_unchanged(clip):
    img, masks = images(), region_masks()
    clip.out_indices = (1, 3)
    try:
        with torch.no_grad():
            ref = clip.encode_image(img)
            out = encode_with_mask_tokens(clip, img, masks, num_blocks=2)
    finally:
        clip.out_indices = ()
    assert same(out, ref)
    emb = out["mask_emb"]
    assert emb.shape == (2, 2, D)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2, 2), atol=1e-5)
    # a quadrant and the whole image give different embeddings
    assert (emb[:, 0] - emb[:, 1]).abs().max() > 1e-3
    # the mask tokens are not the global embedding, and they depend on the depth they start at
    deeper = encode_with_mask_tokens(clip, img, masks, num_blocks=4)["mask_emb"]
    assert (deeper - emb).abs().max() > 1e-4


def test_mask_resolution_and_bias_forms():
    m = torch.zeros(1, 3, 64, 64)
    m[0, 0, :32, :32] = 1
    m[0, 1, :, :] = 0.3  # nowhere >= 0.5: falls back to its best patch
    m[0, 1, 40:48, 8:16] = 0.4
    m[0, 2] = torch.linspace(0, 1, 64).view(1, 64)
    hard = mask_patch_bias(m, (8, 8), "hard")
    assert hard.shape == (1, 3, 64)
    assert torch.equal(hard[0, 0].view(8, 8)[:4, :4], torch.zeros(4, 4))
    assert (hard[0, 0] == 0).sum() == 16
    assert (hard[0, 1] == 0).sum() == 1 and hard[0, 1].view(8, 8)[5, 1] == 0
    # the same masks at the grid resolution give the same bias (area averaging)
    small = F.adaptive_avg_pool2d(m, (8, 8))
    assert torch.equal(mask_patch_bias(small, (8, 8), "hard"), hard)
    soft = mask_patch_bias(m, (8, 8), "soft")
    assert torch.allclose(soft, torch.log(small.flatten(2) + 1e-6))
    full = mask_token_bias(hard, seq_len=1 + 64, include_cls=False)
    assert full.shape == (1, 3, 65 + 3)
    assert torch.isinf(full[..., 0]).all()
    assert torch.equal(full[0, :, 65:], torch.full((3, 3), float("-inf")).fill_diagonal_(0))
    assert (mask_token_bias(hard, 65, include_cls=True)[..., 0] == 0).all()
    with pytest.raises(ValueError, match="bias"):
        mask_patch_bias(m, (8, 8), "sigmoid")


def _reference_block(block, x, m, bias):
    """open_clip's own block forward on ``[x, m]`` with a full attention mask (image rows see image only)."""
    t, n = x.shape[1], m.shape[1]
    full = torch.zeros(t + n, t + n)
    full[:t, t:] = float("-inf")
    full[t:] = bias[0]
    return block(torch.cat([x, m], 1), attn_mask=full)


@pytest.mark.parametrize("peft", [None, dict(type="attention", sites=("q", "k", "v", "out"))])
def test_mask_token_block_matches_open_clip_with_attention_mask(peft):
    model = make(peft)
    perturb(model)  # a trained PEFT method must act on the mask tokens' k/v/out too
    block = model.clip.visual.transformer.resblocks[2]
    g = torch.Generator().manual_seed(4)
    x, m = torch.randn(1, 65, D, generator=g), torch.randn(1, 3, D, generator=g)
    masks = (torch.rand(1, 3, 8, 8, generator=g) > 0.5).float()
    bias = mask_token_bias(mask_patch_bias(masks, (8, 8)), 65)
    with torch.no_grad():
        ref = _reference_block(block, x, m, bias)
        got = mask_token_block(block, x, m, bias)
    assert torch.allclose(got, ref[:, 65:], atol=1e-5)
    # only the patches inside a mask matter: change every patch outside mask 0
    outside = torch.cat([torch.zeros(1), (masks[0, 0].flatten() < 0.5).float()]).bool()
    x2 = x.clone()
    x2[0, outside] += torch.randn(int(outside.sum()), D, generator=g)
    with torch.no_grad():
        moved = mask_token_block(block, x2, m, bias)
    assert torch.allclose(moved[:, 0], got[:, 0], atol=1e-6)
    assert (moved[:, 1:] - got[:, 1:]).abs().max() > 1e-4  # the other masks see some of those patches


def test_mask_tokens_follow_seve(clip):
    img, masks = images(), region_masks()
    text = clip.encode_text(CLASSES)
    with torch.no_grad():
        plain = encode_with_mask_tokens(clip, img, masks)
    seve = SEVE(D, D, blocks=(0, 1, 2), gate_init=0.5)
    seve.attach(clip)
    seve.set_text(text)
    try:
        with torch.no_grad():
            ref = clip.encode_image(img)
            out = encode_with_mask_tokens(clip, img, masks)
    finally:
        seve.detach()
    assert same(out, ref)
    assert (out["mask_emb"] - plain["mask_emb"]).abs().max() > 1e-4


def test_mask_tokens_with_vpt_prompts_empty_masks_and_no_masks():
    model = make(dict(type="vpt", n_tokens=3))  # prompts sit between the class token and the patches
    perturb(model, 0.5)
    img = images()
    masks = torch.zeros(2, 2, 8, 8)
    masks[:, 1, :4] = 1
    with torch.no_grad():
        ref = model.encode_image(img)
        out = encode_with_mask_tokens(model, img, masks, num_blocks=4, include_cls=False)
        none = encode_with_mask_tokens(model, img, masks[:, :0])
    assert same(out, ref)
    assert torch.isfinite(out["mask_emb"]).all()  # an all-zero mask keeps its best patch
    assert none["mask_emb"].shape == (2, 0, D) and same(none, ref)


def test_mask_tokens_errors(clip):
    img = images()
    with pytest.raises(ValueError, match="num_blocks"):
        encode_with_mask_tokens(clip, img, region_masks(), num_blocks=5)
    with pytest.raises(ValueError, match=r"\[B, N, H, W\]"):
        encode_with_mask_tokens(clip, img, region_masks()[:1])


# --------------------------------------------------------------------------- SIMO
def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("image_tokens,mask_tokens", [(True, True), (True, False), (False, True)])
def test_simo_parameters_and_identity(clip, image_tokens, mask_tokens):
    model = make(dict(type="simo", image_tokens=image_tokens, mask_tokens=mask_tokens))
    names = {"clip.peft_method.image_dw", "clip.peft_method.image_db"} if image_tokens else set()
    names |= {"clip.peft_method.image_mask_dw", "clip.peft_method.image_mask_db"} if mask_tokens else set()
    assert _trainable(model) == names
    rows = count_parameters(model)
    per_delta = 4 * (D * D + D)  # 4 blocks, W_q and b_q
    assert rows["image"]["trainable"] == rows["image"]["free"] == per_delta * (image_tokens + mask_tokens)
    assert rows["text"]["trainable"] == rows["shared"]["trainable"] == 0
    img, masks = images(), region_masks()
    with torch.no_grad():
        ref = encode_with_mask_tokens(clip, img, masks)
    out = encode_with_mask_tokens(model, img, masks)
    assert close(out, ref, atol=1e-5), "SIMO must start as the frozen model"
    out["mask_emb"].square().sum().backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_simo_paths_are_separate():
    model = make(dict(type="simo", blocks=[-2, -1]))
    method = get_peft_method(model.clip)
    assert method.image_dw.shape == (2, 1, D, D) and method.image_mask_dw.shape == (2, D, D)
    img, masks = images(), region_masks()
    with torch.no_grad():
        ref = encode_with_mask_tokens(model, img, masks)
        method.image_mask_dw.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
        mask_only = encode_with_mask_tokens(model, img, masks)
        assert same(mask_only, ref), "the mask-token delta must not touch the image tokens"
        assert (mask_only["mask_emb"] - ref["mask_emb"]).abs().max() > 1e-4
        method.image_mask_dw.zero_()
        method.image_dw.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
        image_only = encode_with_mask_tokens(model, img, masks)
        assert (image_only["dense"] - ref["dense"]).abs().max() > 1e-4
        # a block SIMO does not adapt: frozen projection for the mask tokens
        x = torch.randn(1, 3, D)
        w, b = torch.randn(D, D), torch.randn(D)
        assert torch.equal(method.mask_query(("image", 0), x, w, b), F.linear(x, w, b))
        # share=False: the image delta is not the mask tokens' (their own delta is 0 here)
        assert torch.equal(method.mask_query(("image", 3), x, w, b), F.linear(x, w, b))


def test_simo_share_and_merge():
    model = make(dict(type="simo", mask_tokens=False, share=True))
    perturb(model)
    method = get_peft_method(model.clip)
    x, w, b = torch.randn(1, 3, D), torch.randn(D, D), torch.randn(D)
    expect = F.linear(x, w + method.image_dw[1, 0], b + method.image_db[1, 0])
    assert torch.allclose(method.mask_query(("image", 1), x, w, b), expect)
    img, masks = images(), region_masks()
    with torch.no_grad():
        before = encode_with_mask_tokens(model, img, masks)
        model.merge()
        after = encode_with_mask_tokens(model, img, masks)
    assert get_peft_method(model.clip) is None
    assert close(before, after, atol=1e-5)
    for cfg in (dict(type="simo"), dict(type="simo", mask_tokens=False)):
        with pytest.raises(RuntimeError, match="merge"):
            make(cfg).merge()


def test_simo_config_errors():
    with pytest.raises(ValueError, match="peft.encoders \\(simo\\)"):
        build_peft_config(dict(type="simo", encoders="both"))
    with pytest.raises(ValueError, match="peft.sites \\(simo\\)"):
        build_peft_config(dict(type="simo", sites=("q", "v")))
    with pytest.raises(ValueError, match="nothing would train"):
        build_peft_config(dict(type="simo", image_tokens=False, mask_tokens=False))
    with pytest.raises(ValueError, match="peft.share"):
        build_peft_config(dict(type="simo", image_tokens=False, share=True))
    with pytest.raises(TypeError, match="peft.mask_tokens"):
        build_peft_config(dict(type="simo", mask_tokens="yes"))
    with pytest.raises(TypeError, match="unknown keys"):
        build_peft_config(dict(type="simo", position_embeddings=True))
    with pytest.raises(ValueError, match="out of range"):
        make(dict(type="simo", blocks=[4]))
