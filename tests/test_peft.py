"""PEFT methods: identity at init, merge parity, orthogonality, HE, HF PEFT OFT parity, accounting, errors."""
from __future__ import annotations

import math

import pytest
import torch

import ovbench  # noqa: F401  (shims first)
import open_clip  # noqa: E402

from ovbench.peft import apply_peft, build_peft_config, count_parameters, merge_peft, regularization_loss
from ovbench.peft.orth import (
    block_rotate,
    blockdiag_times_weight,
    cayley,
    hyperspherical_energy,
    orthogonality_error,
    skew,
    skew_from_upper,
    weight_times_blockdiag,
)

W = 64  # tiny widths: image and text both 64, 2 blocks each


def tiny_clip(layers_img: int = 2, layers_txt: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return open_clip.CLIP(
        embed_dim=32,
        vision_cfg=dict(image_size=32, patch_size=8, width=W, layers=layers_img, head_width=16),
        text_cfg=dict(context_length=16, vocab_size=100, width=W, heads=4, layers=layers_txt),
    ).eval()


IMG = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
TXT = torch.randint(0, 99, (3, 16), generator=torch.Generator().manual_seed(2))


def run(m):
    return m.encode_image(IMG), m.encode_text(TXT)


def maxdiff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


CONFIGS = {
    "frozen": dict(type="frozen"),
    "full": dict(type="full"),
    "attention": dict(type="attention"),
    "lora": dict(type="lora", r=4, sites=["attn", "mlp"]),
    "vpt_deep": dict(type="vpt", n_tokens=3),
    "vpt_shallow": dict(type="vpt", n_tokens=2, deep=False),
    "oft": dict(type="oft", block_size=16, sites=["attn", "mlp"]),
    "hclip": dict(type="hclip", q=16),
    "hclip_release": dict(type="hclip", q=16, dcrc="release"),
    "hclip_paper_both": dict(type="hclip", q=16, dcrc="paper", orth="both"),
    "hclip_neumann_soft": dict(type="hclip", q=32, cayley="neumann", orth="image", orth_lambda=0.5),
    "hclip_text_only": dict(type="hclip", q=16, symmetric="text", orth="both"),
}


def perturb(m, scale=0.05):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_identity_at_init_and_merge(name):
    m = tiny_clip()
    with torch.no_grad():
        ref = run(m)
    apply_peft(m, CONFIGS[name])
    out = run(m)
    assert maxdiff(ref, out) < 1e-5, "adapted model must equal the frozen one at init"
    loss = out[0].square().sum() + out[1].square().sum()
    if name != "frozen":
        assert loss.requires_grad
        loss.backward()
        assert any(p.grad is not None for p in m.parameters() if p.requires_grad)
    perturb(m)
    with torch.no_grad():
        tuned = run(m)
        if name != "frozen":
            assert maxdiff(ref, tuned) > 1e-3, "a perturbed method must change the output"
        merge_peft(m)
        merged = run(m)
    assert maxdiff(tuned, merged) < 1e-4, "merged and unmerged outputs must agree"


def test_merge_removes_method_and_restores_plain_attention():
    m = tiny_clip()
    apply_peft(m, CONFIGS["hclip_release"])
    merge_peft(m)
    assert not hasattr(m, "peft_method")
    assert all("attention" not in b.__dict__ for b in m.visual.transformer.resblocks)
    assert count_parameters(m)["all"]["trainable"] == 0


def test_cayley_blocks_orthogonal_after_random_updates():
    m = tiny_clip()
    meth = apply_peft(m, dict(type="hclip", q=16, orth="both", dcrc="release"))
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        out = run(m)
        (out[0].sum() + out[1].square().sum()).backward()
        opt.step()
        opt.zero_grad()
        perturb(m, 0.3)
    rs = meth.rotations()
    for enc in ("image", "text"):
        assert orthogonality_error(rs[enc].reshape(-1, 16, 16)) < 1e-5
    # the Neumann approximation is only approximately orthogonal
    s = skew(0.02 * torch.randn(4, 16, 16, dtype=torch.float64))
    assert (cayley(s, "neumann", 12) - cayley(s)).abs().max() < 1e-8


def test_hyperspherical_energy_input_side_kept_output_side_logged():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g, dtype=torch.float64)
    r = cayley(skew(torch.randn(4, 16, 16, generator=g, dtype=torch.float64)))
    he0 = hyperspherical_energy(w)
    rel_in = abs(hyperspherical_energy(weight_times_blockdiag(w, r)) - he0) / he0
    assert rel_in < 1e-4
    # output side: R W mixes neurons; nothing to assert beyond finiteness -- it is logged
    w_out = torch.randn(64, 96, generator=g, dtype=torch.float64)
    rel_out = abs(hyperspherical_energy(blockdiag_times_weight(r, w_out)) - hyperspherical_energy(w_out))
    rel_out = rel_out / hyperspherical_energy(w_out)
    print(f"HE relative change: input-side {rel_in:.2e}, output-side {rel_out:.2e}")
    m = tiny_clip()
    meth = apply_peft(m, dict(type="hclip", q=16, orth="both"))
    perturb(m, 0.3)
    change = meth.energy_change()
    assert set(change) == {f"{e}.{s}" for e in ("image", "text") for s in ("q", "k", "v", "out")}
    assert abs(change["text.q"]) < 1e-4 and abs(change["image.v"]) < 1e-4


def test_block_helpers_match_dense_blockdiag():
    r = torch.randn(4, 16, 16, dtype=torch.float64)
    dense = torch.block_diag(*r)
    w = torch.randn(32, 64, dtype=torch.float64)
    x = torch.randn(5, 64, dtype=torch.float64)
    assert torch.allclose(weight_times_blockdiag(w, r), w @ dense)
    assert torch.allclose(blockdiag_times_weight(r, w.T.contiguous()), dense @ w.T)
    assert torch.allclose(block_rotate(x, r), x @ dense)
    assert torch.allclose(block_rotate(x, r, transpose=True), x @ dense.T)


def _hf_oft_linear(lin, q, neumann, terms=5):
    peft = pytest.importorskip("peft")
    seq = torch.nn.Sequential(torch.nn.Linear(lin.in_features, lin.out_features))
    seq[0].load_state_dict(lin.state_dict())
    cfg = peft.OFTConfig(r=0, oft_block_size=q, target_modules=["0"], use_cayley_neumann=neumann,
                         num_cayley_neumann_terms=terms)
    return peft.get_peft_model(seq, cfg)


def test_oft_parity_with_hf_peft():
    q = 16
    m = tiny_clip()
    meth = apply_peft(m, dict(type="oft", block_size=q, encoders="image", blocks=[0], sites=["mlp_fc"]))
    lin = m.visual.transformer.resblocks[0].mlp.c_fc
    vec = 0.02 * torch.randn(W // q, q * (q - 1) // 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        meth.oft_r["image_0_mlp_fc"].copy_(vec)
    x = torch.randn(7, W)
    ours = lin(x)
    # HF PEFT exact Cayley, same block size, same stored values -> same output
    hf = _hf_oft_linear(lin, q, neumann=False)
    with torch.no_grad():
        for n, p in hf.named_parameters():
            if "oft_R" in n:
                p.copy_(vec)
    assert torch.allclose(hf(x), ours, atol=1e-5)
    # HF PEFT Neumann mode computes the transpose of its exact mode: equal to ours with -vec
    hfn = _hf_oft_linear(lin, q, neumann=True, terms=12)
    oft_r = [p for n, p in hfn.named_parameters() if "oft_R" in n]
    with torch.no_grad():
        oft_r[0].copy_(vec)
    assert not torch.allclose(hfn(x), ours, atol=1e-4), "PEFT's Neumann mode is not its exact mode"
    with torch.no_grad():
        oft_r[0].copy_(-vec)
    assert torch.allclose(hfn(x), ours, atol=1e-4)
    # ours in Neumann mode approximates our (and PEFT's) exact mode, not its transpose
    meth.cfg.cayley, meth.cfg.neumann_terms = "neumann", 12
    assert torch.allclose(lin(x), ours, atol=1e-5)


def test_skew_from_upper_matches_peft_layout():
    v = torch.arange(1.0, 4.0).reshape(1, 3)
    s = skew_from_upper(v, 3)[0]
    assert torch.equal(s, torch.tensor([[0.0, 1, 2], [-1, 0, 3], [-2, -3, 0]]))


def test_parameter_accounting_hclip_and_dcrc():
    m = tiny_clip()
    apply_peft(m, dict(type="hclip", q=16, dcrc="release"))
    rows = count_parameters(m)
    per_enc = 2 * 4 * (W // 16) * 16 * 16  # blocks x sites x b x q x q
    assert rows["image"]["trainable"] == rows["image"]["free"] == per_enc
    assert rows["text"]["trainable"] == per_enc
    assert rows["text"]["free"] == 2 * 4 * (W // 16) * (16 * 15 // 2)
    nb = 2 * (W // 16)
    assert rows["shared"]["trainable"] == 2 * nb * nb + (2 * 4) ** 2
    assert rows["all"]["total"] == sum(p.numel() for p in m.parameters())


def test_parameter_accounting_lora_attention_oft():
    m = tiny_clip()
    apply_peft(m, dict(type="lora", r=4, encoders="text", sites="attn"))
    assert count_parameters(m)["text"]["trainable"] == 2 * 4 * (4 * W + W * 4)
    assert count_parameters(m)["image"]["trainable"] == 0
    m = tiny_clip()
    apply_peft(m, dict(type="attention"))
    rows = count_parameters(m)
    assert rows["image"]["trainable"] == 2 * 2 * (W * W + W) + m.visual.positional_embedding.numel()
    m = tiny_clip()
    apply_peft(m, dict(type="oft", block_size=16, encoders="image", sites="q"))
    assert count_parameters(m)["image"]["trainable"] == 2 * (W // 16) * 16 * 15 // 2


def test_soft_orthogonality_penalty():
    m = tiny_clip()
    apply_peft(m, dict(type="hclip", q=16, orth="text", orth_lambda=2.0))
    assert regularization_loss(m).item() == 0.0
    perturb(m)
    loss = regularization_loss(m)
    assert loss.item() > 0 and loss.requires_grad
    m = tiny_clip()
    apply_peft(m, dict(type="hclip", q=16, orth="text", orth_lambda=0))
    assert regularization_loss(m) is None


def test_dcrc_mixed_once_per_forward_and_grad_accumulation():
    from ovbench.models.clip import OVCLIP

    cfg = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=W, layers=2, head_width=16),
               text_cfg=dict(context_length=16, width=W, heads=4, layers=2))
    model = OVCLIP(model_name=None, model_cfg=cfg, peft=dict(type="hclip", q=16, dcrc="paper"))
    meth = model.clip.peft_method
    calls = []
    meth.dcrc.register_forward_hook(lambda *a: calls.append(1))
    for _ in range(2):  # two forward/backward passes without a step (gradient accumulation)
        out = model(IMG, ["cat", "dog"])
        (out["dense"].sum() + out["text"].sum()).backward()
    assert len(calls) == 2, "DCRC must run once per forward of the whole model, not per block"
    with torch.no_grad():
        model.encode_image(IMG)
        model.encode_image(IMG)
    assert len(calls) == 3, "without gradients and without parameter changes the mixed tensor is reused"


def test_dcrc_towers_of_different_depth():
    m = tiny_clip(layers_img=3, layers_txt=2)
    with torch.no_grad():
        ref = run(m)
    meth = apply_peft(m, dict(type="hclip", q=16, dcrc="release"))
    assert meth.dcrc.layer_mix.shape == (12, 12)
    assert maxdiff(ref, run(m)) < 1e-5


@pytest.mark.parametrize(
    "cfg, exc, words",
    [
        (dict(type="nope"), KeyError, ["peft.type", "hclip"]),
        (dict(type="hclip", q=24), ValueError, ["peft.q", "divide", "64"]),
        (dict(type="oft", block_size=5), ValueError, ["block_size", "divide"]),
        (dict(type="hclip", orth="sometimes"), ValueError, ["peft.orth", "text"]),
        (dict(type="hclip", dcrc="yes"), ValueError, ["peft.dcrc", "release"]),
        (dict(type="lora", rank=4), TypeError, ["unknown keys", "rank"]),
        (dict(type="hclip", sites=["mlp"]), ValueError, ["peft.sites", "not supported"]),
        (dict(type="lora", encoders="audio"), ValueError, ["peft.encoders", "both"]),
        (dict(type="vpt", encoders="both"), ValueError, ["image encoder only"]),
        (dict(type="hclip", q={"image": 16, "text": 32}, dcrc="release"), ValueError, ["one block size"]),
        (dict(type="lora", blocks=[5]), ValueError, ["peft.blocks", "out of range"]),
    ],
)
def test_clear_errors(cfg, exc, words):
    with pytest.raises(exc) as info:
        apply_peft(tiny_clip(), cfg)
    for w in words:
        assert w in str(info.value)


def _span_of_identity_and_ones(r: torch.Tensor) -> bool:
    """Every q x q block is a I + b 11^T: equal diagonal entries, equal off-diagonal entries."""
    q = r.shape[-1]
    eye = torch.eye(q, dtype=torch.bool)
    diag, off = r[..., eye], r[..., ~eye]
    return bool(torch.allclose(diag, diag[..., :1].expand_as(diag), atol=1e-6)
                and torch.allclose(off, off[..., :1].expand_as(off), atol=1e-6))


@pytest.mark.parametrize("dcrc", ["paper", "release"])
def test_dcrc_only_what_it_can_reach(dcrc):
    """Issue 13: with train_blocks=False, whatever DCRC's weights are, the stored (release) reading keeps
    the text R exactly I and the image R in span{I, 11^T} (release: c I); the 'rotations' reading (the
    paper's wording) moves the text R too, into the same span, no longer orthogonal."""
    reach = {}
    for on in ("stored", "rotations"):
        m = tiny_clip()
        meth = apply_peft(m, dict(type="hclip", q=16, dcrc=dcrc, train_blocks=False, dcrc_on=on))
        torch.manual_seed(0)
        with torch.no_grad():  # any point DCRC's training could reach
            for p in meth.dcrc.parameters():
                p.add_(0.3 * torch.randn_like(p))
            reach[on] = {e: r.clone() for e, r in meth.rotations().items()}
    eye = torch.eye(16)
    assert torch.equal(reach["stored"]["text"], eye.expand_as(reach["stored"]["text"]))
    for on in ("stored", "rotations"):
        for e in ("image", "text"):
            assert _span_of_identity_and_ones(reach[on][e]), (on, e)
    assert not torch.allclose(reach["stored"]["image"], eye.expand_as(reach["stored"]["image"]))
    text = reach["rotations"]["text"]
    assert not torch.allclose(text, eye.expand_as(text))
    if dcrc == "release":  # bias-free linear maps of I and 0: c I
        off = ~torch.eye(16, dtype=torch.bool)
        assert torch.equal(reach["stored"]["image"][..., off], torch.zeros_like(reach["stored"]["image"][..., off]))
    with pytest.raises(ValueError, match="dcrc_on"):
        build_peft_config(dict(type="hclip", q=16, dcrc=dcrc, dcrc_on="after"))


def test_block_selection_and_per_encoder_q():
    m = tiny_clip()
    meth = apply_peft(m, dict(type="hclip", q={"image": 32, "text": 16}, blocks={"image": [-1], "text": [0]},
                              sites="qkv"))
    assert meth.image_R.shape == (1, 3, 2, 32, 32) and meth.text_R.shape == (1, 3, 4, 16, 16)
    assert "attention" in m.visual.transformer.resblocks[1].__dict__
    assert "attention" not in m.visual.transformer.resblocks[0].__dict__
    assert build_peft_config(dict(type="hclip")).orth == "text"


def test_dcrc_only_trains_the_mixing_alone_and_moves_the_model():
    """train_blocks=False: the paper's 'DCRC only' row -- R frozen at its init, DCRC's few weights train."""
    m = tiny_clip()
    apply_peft(m, dict(type="hclip", q=16, dcrc="paper", train_blocks=False))
    meth = m.peft_method
    trainable = {n for n, p in meth.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("dcrc.") for n in trainable)
    rows = count_parameters(m)
    assert rows["image"]["trainable"] == rows["text"]["trainable"] == 0
    assert rows["all"]["trainable"] == rows["all"]["free"] == sum(p.numel() for p in meth.dcrc.parameters())
    with torch.no_grad():
        ref = run(m)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        sum(o.sum() for o in run(m)).backward()
        opt.step()
    with torch.no_grad():
        assert maxdiff(run(m), ref) > 0, "training DCRC alone must change the adapted model"
    with pytest.raises(ValueError, match="nothing to train"):
        build_peft_config(dict(type="hclip", q=16, train_blocks=False))
