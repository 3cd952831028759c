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


FISA_REAL = ["fisa/fisa_vitb16_coco-panoptic.py", "fisa/fcclip_vitb16_coco-panoptic.py"]


@pytest.mark.parametrize("rel_path", FISA_REAL)
def test_fisa_family_real_configs_build_and_step(rel_path):
    """ViT-B/16 mask classifier with the real-scale generator (random weights, no stage-1 file):
    one loss step at 128 px; FISA trains SEVE + SIMO only, under 5% of CLIP; FC-CLIP its head only."""
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(str(REPO_ROOT / "configs" / rel_path))
    cfg.model.clip.pretrained = None
    cfg.model.mask_generator_checkpoint = None
    cfg.model.class_names = ["sky", "road", "person", "tree", "car"]
    cfg.model.data_preprocessor.size = (128, 128)
    model = MODELS.build(cfg.model).train()
    torch.manual_seed(0)
    ids = torch.zeros(1, 128, 128, dtype=torch.long)
    ids[:, :64] = 1
    ids[:, 64:, :64] = 2
    ids[:, 64:, 64:] = 3
    s = SegDataSample()
    s.gt_sem_seg = PixelData(data=torch.tensor([0, 1, 2])[ids - 1])
    s.gt_panoptic_seg = PixelData(data=ids, metainfo=dict(segments_info=[
        dict(id=1, category=0, iscrowd=0, isthing=0), dict(id=2, category=1, iscrowd=0, isthing=0),
        dict(id=3, category=2, iscrowd=0, isthing=1)]))
    s.set_metainfo(dict(img_shape=(128, 128), ori_shape=(128, 128), pad_shape=(128, 128)))
    losses = model.loss(torch.randn(1, 3, 128, 128), [s])
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    assert torch.isfinite(total)
    total.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("mask_generator.") for n in trainable)
    clip_total = sum(p.numel() for p in model.backbone.clip.parameters())
    n_train = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad)
    if rel_path.split("/")[-1].startswith("fisa"):
        assert all(n.startswith(("seve.", "backbone.clip.peft_method.")) for n in trainable), sorted(trainable)[:5]
        assert n_train < 0.05 * clip_total, (n_train, clip_total)
    else:
        assert all(n.startswith("in_vocab_head.") for n in trainable), sorted(trainable)[:5]
