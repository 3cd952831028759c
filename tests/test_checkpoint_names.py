"""Existing checkpoints keep loading: every segmentor x PEFT method has the state-dict keys and shapes it had
before the issue-15 refactor (recorded in tests/data/checkpoint_keys.json from the pre-refactor code)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import ConfigDict
from mmseg.registry import MODELS

GOLDEN = json.loads((Path(__file__).parent / "data" / "checkpoint_keys.json").read_text())
CLIP = dict(type="OVCLIP", model_name="ovbench-tiny-vit", pretrained="synth", templates="a scene with {}.",
            dense="value", out_indices=(1, 2))
AGG = dict(hidden_dim=16, num_layers=1, num_heads=4, window=4, appearance_guidance_dim=16, text_guidance_dim=16,
           decoder_dims=(8, 8), decoder_guidance_dims=(4, 4))
GEN = dict(type="QueryMaskGenerator", num_queries=8, channels=(8, 16, 16, 16), mask_feature_dim=16, query_dim=32,
           num_layers=2, ffn_dim=64)


def cost_agg(**peft):
    return dict(type="OVCostAggSegmentor", clip=dict(CLIP, **({"peft": peft} if peft else {})), aggregator=AGG)


CONFIGS = {
    "catseg_frozen": cost_agg(),
    "hclip_paper": cost_agg(type="hclip", q=32, dcrc="paper"),
    "hclip_soft": cost_agg(type="hclip", q=32, orth="both", orth_lambda=0.5),
    "lora_mlp": cost_agg(type="lora", r=4, sites="all"),
    "oft_mlp": cost_agg(type="oft", block_size=16, sites="all"),
    "vpt": cost_agg(type="vpt", n_tokens=3),
    "attention": cost_agg(type="attention"),
    "fisa_tokens": dict(type="OVMaskClassSegmentor", clip=dict(CLIP, peft=dict(type="simo")), mask_generator=GEN,
                        mask_embedding="tokens", seve=dict(dim=16)),
    "mask_lora_pool": dict(type="OVMaskClassSegmentor", clip=dict(CLIP, peft=dict(type="lora", r=4), dense="last"),
                           mask_generator=GEN),
    "fcclip": dict(type="OVMaskClassSegmentor", clip=dict(CLIP), mask_generator=GEN,
                   in_vocab_head=dict(hidden_dim=16), ensemble=dict()),
}


def _rows(state):
    return sorted(f"{k}:{list(v.shape) if torch.is_tensor(v) else type(v).__name__}" for k, v in state.items())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_dict_names_and_shapes_unchanged(name):
    model = MODELS.build(ConfigDict(CONFIGS[name]))
    state = model.state_dict()
    golden = GOLDEN[name]
    for key, shape in golden["method_keys"].items():  # readable failures for the PEFT / head parameters
        assert key in state and list(state[key].shape) == shape, key
    rows = _rows(state)
    assert len(rows) == golden["n_keys"]
    assert hashlib.sha256("\n".join(rows).encode()).hexdigest() == golden["sha256"]
    # and a checkpoint of this layout loads strictly into a fresh build
    MODELS.build(ConfigDict(CONFIGS[name])).load_state_dict(state, strict=True)
