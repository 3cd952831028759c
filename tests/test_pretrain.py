"""The tiny CLIP: open_clip registration, checkpoint round trip + SHA-256 check, pretraining, dense features."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ovbench  # noqa: F401
from ovbench.data.synth.world import held_out_of_pretraining
from ovbench.pretrain.model import (
    CHECKPOINT,
    CHECKPOINT_SHA256,
    MODEL_NAME,
    expected_sha256,
    load_tiny_clip,
    register,
    sha256_of,
)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """Two pretraining steps of batch 8: a real (if useless) checkpoint with its SHA and record."""
    from ovbench.pretrain.train import pretrain

    out = tmp_path_factory.mktemp("pt") / "tiny.pt"
    record = pretrain(out, seed=1, steps=2, batch_size=8, warmup=1, threads=1, save_every=100, command="test")
    return out, record


def test_config_is_registered_with_open_clip():
    import open_clip

    assert register() == MODEL_NAME and MODEL_NAME in open_clip.list_models()
    cfg = open_clip.get_model_config(MODEL_NAME)
    assert cfg["vision_cfg"]["image_size"] == 64 and cfg["vision_cfg"]["patch_size"] == 8


def test_pretrain_writes_checkpoint_sha_and_record(tiny_checkpoint):
    out, record = tiny_checkpoint
    assert out.is_file() and np.isfinite(record["final_loss_mean_last_20"])
    assert record["steps_done"] == 2 and record["seed"] == 1
    assert expected_sha256(str(out) + ".sha256") == sha256_of(out) == record["checkpoint_sha256"]
    assert json.loads(out.with_suffix(".json").read_text())["command"] == "test"
    state = torch.load(out, weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values())


def test_load_goes_through_create_model_and_checks_sha(tiny_checkpoint, tmp_path):
    out, record = tiny_checkpoint
    model, tok = load_tiny_clip(out, sha256=record["checkpoint_sha256"])
    state = torch.load(out, weights_only=True)
    key = "visual.conv1.weight"
    assert torch.equal(model.state_dict()[key], state[key].float())
    assert tok(["a scene with red stripes."]).shape == (1, 32)
    bad = tmp_path / "bad.pt"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    bad.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="SHA-256 mismatch"):
        load_tiny_clip(bad, sha256=record["checkpoint_sha256"])


@pytest.mark.skipif(not CHECKPOINT.is_file(), reason="shipped checkpoint not present")
def test_shipped_checkpoint_matches_its_sha_and_budget():
    assert CHECKPOINT.stat().st_size <= 25 * 2**20
    assert sha256_of(CHECKPOINT) == expected_sha256(CHECKPOINT_SHA256)



def test_cli_defaults_are_the_shipped_recipe():
    """`ovbench pretrain-clip` with no options must reproduce the shipped checkpoint's run."""
    import argparse

    from ovbench.pretrain.model import RECORD
    from ovbench.pretrain.train import add_arguments, out_path

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    record = json.loads(RECORD.read_text())
    assert "continued_from" not in record, "the shipped checkpoint must come from one run"
    assert out_path(args) == CHECKPOINT and args.init is None
    assert (args.seed, args.steps, args.batch_size, args.lr, args.warmup, args.neg_prob) == (
        record["seed"], record["steps_done"], record["batch_size"], record["lr"], record["warmup"],
        record["hard_negative_prob"])
    assert f"torch threads={args.threads}" in record["device"]

def test_dense_features_modes(tiny_checkpoint):
    from ovbench.pretrain.train import to_tensor
    from ovbench.pretrain.zeroshot import dense_features

    out, record = tiny_checkpoint
    model, _ = load_tiny_clip(out, sha256=record["checkpoint_sha256"])
    x = to_tensor(np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8))
    feats = {m: dense_features(model, x, m) for m in ("value", "maskclip", "last", "window3")}
    for f in feats.values():
        assert f.shape == (2, 128, 8, 8)
        assert torch.allclose(f.norm(dim=1), torch.ones(2, 8, 8), atol=1e-4)
    assert not torch.allclose(feats["value"], feats["last"])
    # window inference: a patch's feature depends only on its 3x3 neighbourhood
    x2 = x.clone()
    x2[:, :, 40:, 40:] = 0.0  # change patches (5..7, 5..7) only
    w2 = dense_features(model, x2, "window3")
    assert torch.allclose(w2[:, :, :3, :3], feats["window3"][:, :, :3, :3], atol=1e-5)
    assert not torch.allclose(w2[:, :, 6, 6], feats["window3"][:, :, 6, 6])
    with pytest.raises(ValueError, match="dense mode"):
        dense_features(model, x, "nope")


def test_pretraining_batches_never_show_held_out_combinations():
    from ovbench.pretrain.train import sample_batch

    held = held_out_of_pretraining()
    _, caps, negs, owners = sample_batch(np.random.default_rng(5), 64, neg_prob=1.0)
    assert len(negs) == len(owners) > 48
    text = " | ".join(caps + negs)
    assert not [h for h in held if h in text]


def test_dense_miou_reads_ovsegdataset_and_reports_split(tiny_checkpoint, tmp_path):
    from ovbench.data.synth.writers import generate_benchmark
    from ovbench.pretrain.zeroshot import dense_miou

    out, record = tiny_checkpoint
    model, tok = load_tiny_clip(out, sha256=record["checkpoint_sha256"])
    generate_benchmark(tmp_path, seed=0, scale=0.02)
    res = dense_miou(model, tok, tmp_path, "synth_small", batch=2)
    assert res["images"] == 6 and res["classes"] == 16 and res["unseen_classes"] == 4  # 300 x 0.02 images
    for key in ("mIoU", "mIoU_seen", "mIoU_unseen", "random_mIoU", "random_mIoU_unseen"):
        assert 0.0 <= res[key] <= 100.0 or np.isnan(res[key]), key


def test_continuation_stage_starts_from_init_and_records_parent(tiny_checkpoint, tmp_path):
    from ovbench.pretrain.train import pretrain

    out, record = tiny_checkpoint
    rec2 = pretrain(tmp_path / "stage2.pt", seed=2, steps=1, batch_size=4, warmup=1, lr=0.0, threads=1, init=out)
    assert rec2["continued_from"]["checkpoint_sha256"] == record["checkpoint_sha256"]
    a, b = torch.load(out, weights_only=True), torch.load(tmp_path / "stage2.pt", weights_only=True)
    assert torch.equal(a["visual.conv1.weight"], b["visual.conv1.weight"])  # lr 0: weights unchanged
