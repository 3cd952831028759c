"""``ovbench params``: counts from a config, from a model name, and the table's key rows."""
from __future__ import annotations

import argparse

import ovbench  # noqa: F401
from ovbench import params


def _args(**kw):
    ns = dict(config=None, model=None, peft='{"type": "frozen"}', table=False, out="", json=False)
    ns.update(kw)
    return argparse.Namespace(**ns)


def test_vit_b16_hclip_counts_match_release_code():
    rows = params.count_model("ViT-B-16", dict(type="hclip", q=128, dcrc="release"))
    assert rows["image"]["trainable"] + rows["text"]["trainable"] == 128 * 128 * 48 * 10
    assert rows["shared"]["trainable"] == 3504
    assert rows["text"]["free"] == 12 * 4 * 4 * 128 * 127 // 2


def test_vit_l14_runs_with_dcrc_and_q_error():
    rows = params.count_model("ViT-L-14", dict(type="hclip", q=256, dcrc="paper", orth="both"))
    assert rows["image"]["trainable"] == 24 * 4 * 4 * 256 * 256
    try:
        params.count_model("ViT-L-14", dict(type="hclip", q=96))
    except ValueError as e:
        assert "peft.q" in str(e) and "image width 1024" in str(e)
    else:
        raise AssertionError("q=96 does not divide the image width 1024")


def test_params_command_from_config(tmp_path, capsys):
    cfg = tmp_path / "cfg.py"
    cfg.write_text(
        "model = dict(type='AnySeg', backbone=dict(type='OVCLIP', model_name='ViT-B-16', "
        "peft=dict(type='lora', r=4, encoders='image')))\n"
    )
    assert params.run(_args(config=str(cfg))) == 0
    out = capsys.readouterr().out
    assert "model.backbone" in out and f"{12 * 4 * 2 * 768 * 4:,}" in out


def test_cli_entry_points_at_params():
    from ovbench.cli import COMMANDS

    assert COMMANDS["params"][0] == "ovbench.params"
