"""Real-scale configs (configs/catseg, configs/hclip) build with random CLIP weights and run
one forward/backward on CPU at a reduced input size and vocabulary."""
from __future__ import annotations

import pytest
import torch

from conftest import REPO_ROOT

B16 = ["catseg/catseg_vitb16_coco-stuff171_384.py", "hclip/hclip_vitb16_coco-stuff171_384.py"]
L14 = ["catseg/catseg_vitl14_coco-stuff171_384.py", "hclip/hclip_vitl14_coco-stuff171_384.py"]


def _one_step(rel_path: str, size: int) -> dict:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    init_default_scope("mmseg")
    cfg = Config.fromfile(str(REPO_ROOT / "configs" / rel_path))
    cfg.model.clip.pretrained = None  # no downloads here; the real configs name a tag
    cfg.model.class_names = ["sky", "road", "person", "tree", "car"]
    cfg.model.data_preprocessor.size = (size, size)
    model = MODELS.build(cfg.model).train()
    torch.manual_seed(0)
    samples = []
    for _ in range(1):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, size, size)))
        s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(s)
    losses = model.loss(torch.randn(1, 3, size, size), samples)
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    total.backward()
    grads = [p for p in model.parameters() if p.requires_grad]
    assert grads and all(p.grad is not None for p in model.aggregator.parameters())
    return dict(model=model, losses=losses)


@pytest.mark.parametrize("rel_path", B16)
def test_vit_b16_configs_build_and_step(rel_path):
    out = _one_step(rel_path, size=128)
    assert torch.isfinite(out["losses"]["loss_bce"])
    clip = out["model"].backbone.clip
    assert clip.visual.transformer.width == 768
    method = type(clip.peft_method).__name__ if hasattr(clip, "peft_method") else ""
    assert ("hclip" in rel_path) == ("HClip" in method)


@pytest.mark.slow
@pytest.mark.parametrize("rel_path", L14)
def test_vit_l14_configs_build_and_step(rel_path):
    out = _one_step(rel_path, size=112)
    assert out["model"].backbone.clip.visual.transformer.width == 1024


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "baselines").glob("*.py")), ids=lambda p: p.stem)
def test_baseline_configs_load_and_name_a_valid_method(path):
    from mmengine.config import Config

    from ovbench.peft import build_peft_config

    cfg = Config.fromfile(str(path))
    assert cfg.model.type == "OVCostAggSegmentor" and cfg.model.clip.model_name == "ViT-B-16"
    method = build_peft_config(cfg.model.clip.peft)
    assert type(method).__name__.lower().startswith(cfg.model.clip.peft.type)
    assert ("zeroshot" in path.stem) == (cfg.model.aggregator is None)
