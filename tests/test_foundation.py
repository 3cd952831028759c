"""Issue 2: the stack imports, open_clip loads local weights, and a tiny MMSeg model
trains, validates, checkpoints, resumes and runs inference on CPU."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SMOKE_CONFIG, data_root_options


def test_stack_imports():
    import mmseg.apis  # noqa: F401
    import mmseg.datasets  # noqa: F401
    import mmseg.models  # noqa: F401
    import open_clip  # noqa: F401


def test_open_clip_builds_vit_b16_and_loads_a_local_checkpoint(tmp_path):
    import open_clip

    model = open_clip.create_model("ViT-B-16", pretrained=None)
    assert model.visual.conv1.kernel_size == (16, 16)
    # Perturb, save, and load back through the public `pretrained=<path>` route.
    with torch.no_grad():
        model.logit_scale.fill_(1.2345)
    path = tmp_path / "vit_b16.pt"
    torch.save(model.state_dict(), path)
    loaded = open_clip.create_model("ViT-B-16", pretrained=str(path))
    assert loaded.logit_scale.item() == pytest.approx(1.2345)
    assert torch.equal(loaded.visual.conv1.weight, model.visual.conv1.weight)


def test_ovbench_modules_are_in_mmseg_registries():
    from mmseg.registry import DATASETS, METRICS

    assert DATASETS.get("OVSegDataset") is not None
    assert METRICS.get("OpenVocabIoUMetric") is not None


def test_train_validate_checkpoint_resume_and_infer(toy_dataset, tmp_path):
    from mmseg.apis import inference_model, init_model

    from ovbench.train import load_config, train

    work_dir = tmp_path / "wd"
    opts = {"train_cfg.max_iters": 40, "train_cfg.val_interval": 20, "default_hooks.checkpoint.interval": 20}
    cfg = load_config(str(SMOKE_CONFIG), work_dir=str(work_dir), cfg_options=data_root_options(toy_dataset, **opts), seed=1)
    runner = train(cfg)
    assert runner.iter == 40
    assert (work_dir / "iter_20.pth").is_file() and (work_dir / "iter_40.pth").is_file()
    metrics = runner.val_loop.run()
    assert {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"} <= set(metrics)
    # The model learned something: the background/foreground split is easy, so pixel accuracy is well
    # above always answering the majority class (background).
    labels = np.concatenate([np.asarray(Image.open(p)).ravel()
                             for p in sorted((toy_dataset / "ann_dir" / "val").glob("*.png"))])
    majority = 100.0 * np.bincount(labels).max() / labels.size
    assert metrics["aAcc"] > majority + 10, (metrics["aAcc"], majority)

    # Resume from the latest checkpoint and continue to iteration 50.
    opts["train_cfg.max_iters"] = 50
    cfg2 = load_config(
        str(SMOKE_CONFIG), work_dir=str(work_dir), cfg_options=data_root_options(toy_dataset, **opts), seed=1, resume="auto"
    )
    runner2 = train(cfg2)
    assert runner2.iter == 50
    saved = torch.load(work_dir / "iter_50.pth", map_location="cpu", weights_only=False)
    assert saved["meta"]["iter"] == 50

    # The checkpoint serves mmseg's public inference API.
    model = init_model(str(work_dir / "tiny_fcn.py"), str(work_dir / "iter_50.pth"), device="cpu")
    image = sorted((toy_dataset / "img_dir" / "val").glob("*.png"))[0]
    result = inference_model(model, str(image))
    assert tuple(result.pred_sem_seg.data.shape) == (1, 64, 64)
    assert set(result.pred_sem_seg.data.unique().tolist()) <= {0, 1, 2}


def test_same_seed_gives_same_numbers(toy_dataset, tmp_path):
    from ovbench.train import load_config, train

    def final_weights(sub: str) -> torch.Tensor:
        cfg = load_config(
            str(SMOKE_CONFIG),
            work_dir=str(tmp_path / sub),
            cfg_options=data_root_options(toy_dataset, **{"train_cfg.max_iters": 5, "train_cfg.val_interval": 100}),
            seed=7,
        )
        runner = train(cfg)
        return runner.model.decode_head.conv_seg.weight.detach().clone()

    assert torch.equal(final_weights("a"), final_weights("b"))


def test_train_cli_entry(toy_dataset, tmp_path):
    from ovbench.cli import main

    work_dir = tmp_path / "cli"
    opts = [f"{k}={v}" for k, v in data_root_options(toy_dataset, **{"train_cfg.max_iters": 2, "train_cfg.val_interval": 2}).items()]
    assert main(["train", str(SMOKE_CONFIG), "--work-dir", str(work_dir), "--seed", "3", "--cfg-options", *opts]) == 0
    dumped = (work_dir / "tiny_fcn.py").read_text()
    assert "seed=3" in dumped.replace(" ", "")


def test_missing_data_root_is_named_before_training(tmp_path):
    from ovbench.train import load_config, train

    (tmp_path / "vocabulary.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    cfg = load_config(str(SMOKE_CONFIG), work_dir=str(tmp_path / "wd"), cfg_options=data_root_options(tmp_path))
    with pytest.raises(FileNotFoundError, match="img_dir/train"):
        train(cfg)


def test_dumped_config_with_infinite_values_loads_back(tmp_path):
    """H-CLIP's hard Cayley is orth_lambda=inf; the work dir's config dump must stay loadable."""
    from mmengine.config import Config

    from ovbench.train import load_config

    cfg = load_config(str(SMOKE_CONFIG.with_name("tiny_catseg.py")), work_dir=str(tmp_path),
                      cfg_options={"model.clip.peft": dict(_delete_=True, type="hclip", q=16, orth_lambda=float("inf"))})
    assert cfg.model.clip.peft.orth_lambda == "inf"
    cfg.dump(str(tmp_path / "dumped.py"))
    again = Config.fromfile(str(tmp_path / "dumped.py"))
    from ovbench.peft import build_peft_config

    assert build_peft_config(again.model.clip.peft).orth_lambda == float("inf")
