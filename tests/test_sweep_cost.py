"""Cost accounting of a trial: free parameters of orthogonal PEFT blocks are fewer than stored ones."""
from __future__ import annotations

from mmengine.config import Config
from mmengine.registry import init_default_scope

from ovbench.sweep.trial import constrained_params


def build(peft: dict):
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    cfg = Config.fromfile("configs/smoke/tiny_catseg.py")
    cfg.model.clip.peft = peft
    return MODELS.build(cfg.model)


def test_hclip_free_parameters_count_skew_symmetric_blocks_once():
    # text width 64, q=16 -> 4 blocks per site; a block stores 16*16 and has 16*15/2 free values;
    # 4 attention sites x 2 text layers are orthogonal (orth='text')
    model = build(dict(type="hclip", q=16, orth="text", dcrc="paper"))
    assert constrained_params(model) == 2 * 4 * 4 * (16 * 16 - 16 * 15 // 2)
    assert constrained_params(build(dict(type="lora", r=4))) == 0
