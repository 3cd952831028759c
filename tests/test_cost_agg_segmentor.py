"""OVCostAggSegmentor through MMSeg: Runner training with the vocabulary hook, a test
vocabulary that differs from training, zero-shot mode, and init_model/inference_model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, data_root_options

CONFIG = REPO_ROOT / "configs" / "smoke" / "tiny_catseg.py"


def test_trains_validates_and_serves_inference(toy_dataset, tmp_path):
    from mmseg.apis import inference_model, init_model

    from ovbench.train import load_config, train

    work_dir = tmp_path / "wd"
    cfg = load_config(str(CONFIG), work_dir=str(work_dir), seed=0, cfg_options=data_root_options(
        toy_dataset, **{"train_cfg.max_iters": 4, "train_cfg.val_interval": 4, "default_hooks.checkpoint.interval": 4}))
    runner = train(cfg)
    metrics = runner.val_loop.run()
    assert {"mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"} <= set(metrics)
    # Only the head and the 'attention' PEFT parameters of CLIP train.
    trainable = {n.split(".")[0] for n, p in runner.model.named_parameters() if p.requires_grad}
    assert trainable == {"backbone", "aggregator"}
    frozen_clip = [n for n, p in runner.model.backbone.named_parameters() if "mlp" in n and p.requires_grad]
    assert not frozen_clip

    model = init_model(str(work_dir / "tiny_catseg.py"), str(work_dir / "iter_4.pth"), device="cpu")
    assert model.class_names == ("background", "red square", "blue disc")  # from the checkpoint's dataset_meta
    image = sorted((toy_dataset / "img_dir" / "val").glob("*.png"))[0]
    result = inference_model(model, str(image))
    assert result.seg_logits.data.shape == (3, 64, 64)


def test_test_vocabulary_may_differ_from_training(toy_dataset, tmp_path):
    from mmengine.runner import Runner

    from ovbench.train import load_config

    root = tmp_path / "bigger_vocab"
    shutil.copytree(toy_dataset, root)
    vocab = {"name": "toy5", "classes": ["background", "red square", "blue disc", "green cube", "yellow star"],
             "unseen": ["blue disc", "green cube", "yellow star"]}
    (root / "vocabulary.json").write_text(json.dumps(vocab))
    opts = data_root_options(toy_dataset, **{"test_dataloader.dataset.data_root": str(root)})
    cfg = load_config(str(CONFIG), work_dir=str(tmp_path / "wd"), seed=0, cfg_options=opts)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    assert runner.model.num_classes == 5
    assert "mIoU_unseen" in metrics


def test_zero_shot_maskclip_mode_has_no_head_and_refuses_training(toy_dataset):
    from mmseg.registry import MODELS

    from ovbench.models.segmentors import OVCostAggSegmentor

    cfg = dict(type="OVCostAggSegmentor", class_names=["a", "b"], aggregator=None,
               clip=dict(model_name=None, model_cfg=dict(
                   embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=16),
                   text_cfg=dict(context_length=16, vocab_size=49408, width=64, heads=4, layers=2))),
               data_preprocessor=dict(type="SegDataPreProcessor", size=(32, 32)))
    model: OVCostAggSegmentor = MODELS.build(cfg).eval()
    logits = model.encode_decode(torch.rand(1, 3, 32, 32), [{}])
    assert logits.shape == (1, 2, 32, 32)
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(RuntimeError, match="nothing to train"):
        model.loss(torch.rand(1, 3, 32, 32), [])


def test_bce_rejects_labels_outside_the_vocabulary():
    from ovbench.models.segmentors import per_pixel_bce

    logits = torch.zeros(1, 2, 2, 2)
    assert per_pixel_bce(logits, torch.tensor([[[0, 1], [255, 1]]])).item() == pytest.approx(0.6931, abs=1e-4)
    with pytest.raises(ValueError, match="vocabulary size"):
        per_pixel_bce(logits, torch.tensor([[[0, 2], [1, 1]]]))


def test_predict_with_alignment_runs_the_image_tower_once_per_batch():
    """The alignment diagnostic reuses predict's own image-tower pass (issue: 2 passes per test image)."""
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from ovbench.models.segmentors import OVCostAggSegmentor
    from ovbench.models.segmentors.cost_agg_segmentor import CostAggregator, _gt_on_grid, alignment_stats

    cfg = dict(type="OVCostAggSegmentor", class_names=["a", "b", "c"], alignment=True,
               aggregator=dict(hidden_dim=16, num_layers=1, num_heads=2, window=2, appearance_guidance_dim=8,
                               text_guidance_dim=8, decoder_dims=(8, 8), decoder_guidance_dims=(4, 4)),
               clip=dict(model_name=None, out_indices=(1, 0), model_cfg=dict(
                   embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=64, layers=2, head_width=16),
                   text_cfg=dict(context_length=16, vocab_size=49408, width=64, heads=4, layers=2))),
               data_preprocessor=dict(type="SegDataPreProcessor", size=(32, 32)))
    torch.manual_seed(0)
    model: OVCostAggSegmentor = MODELS.build(cfg).eval()
    inputs = torch.rand(2, 3, 32, 32)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 32)))
        samples.append(s)
    calls = []
    original = model.backbone.encode_image
    model.backbone.encode_image = lambda *a, **k: calls.append(1) or original(*a, **k)
    with torch.no_grad():
        results = model.predict(inputs, samples)
        assert len(calls) == 1  # one pass for the batch, shared by prediction and diagnostic
        feats = model.extract_feat(inputs)
        cost = model.merge_prompts(CostAggregator.cost_volume(feats["dense"], feats["text"]), model.prompt_names()[1])
    for i, r in enumerate(results):
        expected = alignment_stats(cost[i], _gt_on_grid(r, inputs.shape[2:], cost.shape[2:]))
        for key in ("sum_cos", "sum_margin", "count"):
            assert (r.alignment[key] == expected[key]).all(), key


def test_own_head_stream_gives_every_peft_setting_the_same_head_for_a_seed():
    """Common random numbers: LoRA of rank 2 and 8 draw different numbers of random values before the
    head is built, so on the shared stream seed 7 gives them different heads; with ``own_head_stream``
    the same head. The CLIP side draws as before either way."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    import ovbench  # noqa: F401  (registers the models)

    base = Config.fromfile(str(CONFIG)).model

    def build(rank: int, own: bool):
        cfg = base.copy()
        cfg["clip"] = dict(cfg["clip"], peft=dict(type="lora", r=rank))
        torch.manual_seed(7)
        return MODELS.build(dict(cfg, own_head_stream=own))

    def head(model) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.aggregator.parameters()])

    def lora(model) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for n, p in model.backbone.named_parameters() if "lora" in n])

    shared2, shared8, own2, own8 = build(2, False), build(8, False), build(2, True), build(8, True)
    assert not torch.equal(head(shared2), head(shared8))
    assert torch.equal(head(own2), head(own8))
    assert not torch.equal(head(own2), head(shared2))
    assert torch.equal(lora(own2), lora(shared2)) and torch.equal(lora(own8), lora(shared8))


def test_sample_training_classes_keeps_every_present_class_and_fills_up_with_absent_ones():
    from ovbench.models.segmentors.cost_agg_segmentor import relabel, sample_training_classes

    target = torch.tensor([[[1, 4], [255, 4]], [[6, 6], [1, 255]]])
    assert sample_training_classes(target, 8, None) is None
    assert sample_training_classes(target, 8, 8) is None  # the budget covers the vocabulary
    draws = set()
    for seed in range(20):
        torch.manual_seed(seed)
        classes = sample_training_classes(target, 8, 5)
        assert classes.tolist() == sorted(classes.tolist()) and len(classes) == 5
        assert {1, 4, 6} <= set(classes.tolist())
        draws.add(tuple(classes.tolist()))
    assert len(draws) > 1  # the negatives are random
    assert sample_training_classes(target, 8, 2).tolist() == [1, 4, 6]  # present classes are never dropped
    classes = torch.tensor([0, 1, 4, 6])
    assert relabel(target, classes, 8).tolist() == [[[1, 2], [255, 2]], [[3, 3], [1, 255]]]
    with pytest.raises(ValueError, match="vocabulary size"):
        sample_training_classes(torch.tensor([[[9]]]), 8, 3)


def test_select_classes_keeps_each_class_s_prompt_group():
    from ovbench.models.segmentors.vocabulary import OpenVocabularyMixin

    vocab = OpenVocabularyMixin()
    vocab.set_vocabulary(["sky", "background", "dog"], prompts={"background": ["wall", "floor"]})
    names, groups = vocab.prompt_names()
    rows, kept = vocab.select_classes(groups, [1, 2])
    assert [names[r] for r in rows] == ["wall", "floor", "dog"]
    assert kept == [slice(0, 2), slice(2, 3)]


def _tiny_model(peft: str, names, train_classes=None, **kwargs):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    import ovbench  # noqa: F401  (registers the models)

    cfg = Config.fromfile(str(CONFIG)).model
    cfg["clip"] = dict(cfg["clip"], peft=dict(type=peft))
    torch.manual_seed(0)
    return MODELS.build(dict(cfg, class_names=list(names), train_classes=train_classes, **kwargs)).train()


def _batch(labels: torch.Tensor):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    samples = []
    for lab in labels:
        s = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=lab[None])
        samples.append(s)
    torch.manual_seed(1)
    return torch.rand(len(labels), 3, 64, 64), samples


@pytest.mark.parametrize("peft", ["frozen", "attention"])
def test_train_classes_scores_the_batch_on_its_sampled_sub_vocabulary(peft):
    """The loss with ``train_classes`` is the loss of the same model whose vocabulary is just the sampled
    classes, with the labels renumbered: the head and the text tower see nothing else."""
    import copy

    import torch.nn.functional as F

    from ovbench.models.segmentors.cost_agg_segmentor import per_pixel_bce, relabel, sample_training_classes

    names = [f"class {c}" for c in "abcdefgh"]
    labels = torch.full((2, 64, 64), 255, dtype=torch.long)
    labels[0, :32], labels[0, 32:] = 1, 4
    labels[1, :, :40] = 6
    inputs, samples = _batch(labels)
    model = _tiny_model(peft, names, train_classes=5)
    torch.manual_seed(3)
    sampled = model.task_losses(inputs, samples)["loss_bce"]
    torch.manual_seed(3)
    classes = sample_training_classes(labels, 8, 5)
    assert len(classes) == 5 and {1, 4, 6} <= set(classes.tolist())
    sub = copy.deepcopy(model)
    sub.train_classes = None
    sub.set_vocabulary([names[i] for i in classes])
    logits = F.interpolate(sub._logits(inputs), size=(64, 64), mode="bilinear", align_corners=False)
    expected = per_pixel_bce(logits, relabel(labels, classes, 8))
    torch.testing.assert_close(sampled, expected, rtol=1e-5, atol=1e-6)
    whole = copy.deepcopy(model)
    whole.train_classes = None
    assert not torch.allclose(whole.task_losses(inputs, samples)["loss_bce"], sampled)


def test_train_classes_encodes_only_the_sampled_prompts_and_never_re_encodes_a_frozen_text_tower():
    names = [f"class {c}" for c in "abcdefgh"]
    labels = torch.full((1, 64, 64), 2, dtype=torch.long)
    inputs, samples = _batch(labels)
    for peft, trains_text in (("frozen", False), ("attention", True)):
        model = _tiny_model(peft, names, train_classes=3)
        assert model.backbone.text_frozen() is not trains_text
        encoded = []
        original = model.backbone._embed_tokens
        model.backbone._embed_tokens = lambda tokens, *a: encoded.append(len(tokens)) or original(tokens, *a)
        for seed in range(3):
            torch.manual_seed(seed)
            model.task_losses(inputs, samples)
        # a trained text tower embeds 3 prompts a batch; a frozen one the whole vocabulary once, then rows
        assert encoded == ([3, 3, 3] if trains_text else [8])


def test_similar_negatives_are_the_absent_classes_closest_to_a_present_one():
    from ovbench.models.segmentors.cost_agg_segmentor import sample_training_classes

    target = torch.tensor([[[0, 0], [1, 255]]])
    similarity = torch.eye(6)
    similarity[0, 4] = similarity[4, 0] = 0.9  # class 4 is the closest to present class 0
    similarity[1, 2] = similarity[2, 1] = 0.5  # class 2 next, to present class 1
    similarity[0, 3] = similarity[3, 0] = -0.5
    assert sample_training_classes(target, 6, 4, similarity=similarity).tolist() == [0, 1, 2, 4]
    assert sample_training_classes(target, 6, 3, similarity=similarity).tolist() == [0, 1, 4]


def test_train_negatives_similar_scores_the_batch_on_the_classes_its_text_embeddings_name():
    import copy

    import torch.nn.functional as F

    from ovbench.models.segmentors.cost_agg_segmentor import per_pixel_bce, relabel, sample_training_classes

    names = [f"class {c}" for c in "abcdefgh"]
    labels = torch.full((1, 64, 64), 255, dtype=torch.long)
    labels[0, :32], labels[0, 32:] = 1, 4
    inputs, samples = _batch(labels)
    model = _tiny_model("frozen", names, train_classes=4, train_negatives="similar")
    with torch.no_grad():
        text = model.backbone.encode_text(names)
    classes = sample_training_classes(labels, 8, 4, similarity=text @ text.t())
    sampled = model.task_losses(inputs, samples)["loss_bce"]
    sub = copy.deepcopy(model)
    sub.train_classes = None
    sub.set_vocabulary([names[i] for i in classes])
    logits = F.interpolate(sub._logits(inputs), size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(sampled, per_pixel_bce(logits, relabel(labels, classes, 8)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="train_negatives"):
        _tiny_model("frozen", names, train_classes=4, train_negatives="hard")
