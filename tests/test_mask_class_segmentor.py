"""The mask-classification segmentor (FISA / FC-CLIP family) on tiny synthetic samples."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import nn

from ovbench.models.heads.mask_matching import gt_masks_from_panoptic, match_by_iou
from ovbench.models.segmentors.mask_class_segmentor import OVMaskClassSegmentor
from ovbench.models.segmentors.mask_classifier import MaskScores

CLIP = dict(type="OVCLIP", model_name="ovbench-tiny-vit", pretrained="synth", templates="a scene with {}.")
GEN = dict(type="QueryMaskGenerator", num_queries=8, channels=(8, 16, 16, 16), mask_feature_dim=16, query_dim=32,
           num_layers=2, ffn_dim=64)
CLASSES = ("sky", "dog", "cat", "tree")
THINGS = ("dog", "cat")


def _sample(size: int = 64) -> SegDataSample:
    """Top half: stuff 'sky' (id 1); bottom-left: thing 'dog' (id 2); bottom-right: thing 'cat' (id 3),
    with a void strip between them."""
    ids = torch.zeros(size, size, dtype=torch.long)
    h = size // 2
    ids[:h] = 1
    ids[h:, : h - 4] = 2
    ids[h:, h + 4:] = 3
    sem = torch.full_like(ids, 255)
    for seg_id, cat in ((1, 0), (2, 1), (3, 2)):
        sem[ids == seg_id] = cat
    infos = [dict(id=1, category=0, iscrowd=0, isthing=0), dict(id=2, category=1, iscrowd=0, isthing=1),
             dict(id=3, category=2, iscrowd=0, isthing=1)]
    s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                                    padding_size=[0, 0, 0, 0]))
    s.gt_sem_seg = PixelData(data=sem[None])
    s.gt_panoptic_seg = PixelData(data=ids[None], metainfo=dict(segments_info=infos))
    return s


def _inputs(n: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _build(**kw) -> OVMaskClassSegmentor:
    torch.manual_seed(0)
    cfg = dict(type="OVMaskClassSegmentor", clip=dict(CLIP, **kw.pop("clip", {})), mask_generator=kw.pop("gen", GEN))
    cfg.update(kw)
    model = MODELS.build(cfg)
    model.set_vocabulary(CLASSES, thing_classes=THINGS)
    return model


class _GtGenerator(nn.Module):
    """Stand-in generator: proposals = the ground-truth segments of `_sample()` (logits +-10, at the
    input size) plus two junk masks, objectness 0.95."""

    num_queries, mask_feature_dim, query_dim = 5, 4, 8

    def forward(self, img):
        ids = _sample().gt_panoptic_seg.data[0]
        masks = [ids == k for k in (1, 2, 3)]
        junk = torch.zeros_like(ids, dtype=torch.bool)
        junk[:4, :4] = True
        masks += [junk, torch.zeros_like(junk)]
        m = torch.stack(masks).float()[None]  # at the input size (exact; a real generator's are at 1/4)
        b = img.shape[0]
        return dict(mask_logits=(m * 20 - 10).expand(b, -1, -1, -1), objectness=torch.full((b, 5), math.log(19.0)),
                    mask_features=torch.zeros(b, 4, 16, 16), queries=torch.zeros(b, 5, 8))


MODELS.register_module(name="_GtGeneratorForTests", module=_GtGenerator, force=True)


def _perfect_classifier(model, gt_sem):
    """A classifier stand-in: each mask gets (probability 1) the majority ground-truth class under it."""

    def classify(inputs, gen, masks, queries=None, dense=None):
        m = nn.functional.interpolate(masks.float(), size=gt_sem.shape, mode="nearest")
        probs = torch.full((*masks.shape[:2], model.num_classes), 1.0 / model.num_classes)
        for b in range(masks.shape[0]):
            for n in range(masks.shape[1]):
                labels = gt_sem[m[b, n] > 0.5]
                labels = labels[labels != 255]
                if labels.numel():
                    probs[b, n] = 0
                    probs[b, n, int(labels.mode().values)] = 1.0
        return MaskScores(probs, None)

    model.classify = classify


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _check_backprop(model, prefixes):
    model.train()
    samples = [_sample(), _sample()]
    losses = model.loss(_inputs(2), samples)
    assert torch.isfinite(losses["loss_cls"]) and float(losses["num_matched"]) > 0
    total = sum(v for k, v in losses.items() if "loss" in k)
    total.backward()
    trainable = _trainable(model)
    assert trainable and all(n.startswith(prefixes) for n in trainable), sorted(trainable)[:5]
    assert not any(n.startswith("mask_generator.") for n in trainable)
    for n, p in model.named_parameters():
        if n not in trainable:
            assert p.grad is None, n
    grads = [p.grad for n, p in model.named_parameters() if n in trainable]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert not model.mask_generator.training  # stays in eval mode under model.train()
    return losses


def test_fcclip_variant_trains_only_the_in_vocabulary_head():
    model = _build(in_vocab_head=dict(hidden_dim=32), ensemble=dict(), train_cfg=dict(match_iou=0.0))
    _check_backprop(model, ("in_vocab_head.",))


def test_fisa_variant_trains_simo_and_seve_with_few_parameters():
    model = _build(clip=dict(peft=dict(type="simo", image_tokens=True, mask_tokens=True)), seve=dict(dim=32),
                   mask_embedding="tokens", train_cfg=dict(match_iou=0.0))
    _check_backprop(model, ("backbone.clip.peft_method.", "seve."))
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_clip = sum(p.numel() for n, p in model.backbone.clip.named_parameters() if not n.startswith("peft_method."))
    assert n_trainable < 0.05 * n_clip, (n_trainable, n_clip)


def test_lora_variant_trains_only_lora():
    # dense='last': with MaskCLIP's value path the last block's q/k are (rightly) unused
    model = _build(clip=dict(peft=dict(type="lora", r=4), dense="last"), train_cfg=dict(match_iou=0.0))
    _check_backprop(model, ("backbone.clip.peft_method.",))


def test_in_vocab_head_requires_a_frozen_clip():
    with pytest.raises(ValueError, match="frozen"):
        _build(clip=dict(peft=dict(type="lora", r=4)), in_vocab_head=dict())
    with pytest.raises(NotImplementedError, match="in_vocab_head"):
        _build(ensemble=dict())
    with pytest.raises(KeyError, match="score_threshold"):
        _build(test_cfg=dict(object_mask_threshold=0.8))
    frozen = _build()  # zero-shot: nothing to train
    with pytest.raises(RuntimeError, match="zero-shot"):
        frozen.loss(_inputs(), [_sample()])


def test_predict_writes_every_map_at_the_original_size():
    model = _build(test_cfg=dict(extra_modes=("oracle_masks", "oracle_classes"), score_threshold=0.0))
    model.eval()
    s = _sample()
    # the image was resized from 48x40 and padded to 64x64 on the bottom: outputs come back at 48x40
    s.set_metainfo(dict(ori_shape=(48, 40), img_shape=(60, 64), padding_size=[0, 0, 0, 4]))
    for key in ("gt_panoptic_seg", "gt_sem_seg"):  # test pipelines load the ground truth at the original size
        field = getattr(s, key)
        small = nn.functional.interpolate(field.data[None].float(), size=(48, 40), mode="nearest")[0].long()
        s.set_field(PixelData(data=small, metainfo=field.metainfo), key)
    with torch.no_grad():
        out = model.predict(_inputs(), [s])[0]
    assert out.seg_logits.data.shape == (len(CLASSES), 48, 40)
    for key in ("pred_sem_seg", "pred_panoptic_seg", "pred_sem_seg_oracle_masks", "pred_panoptic_seg_oracle_masks",
                "pred_sem_seg_oracle_classes", "pred_panoptic_seg_oracle_classes"):
        assert getattr(out, key).data.shape == (1, 48, 40), key
    pan = out.pred_panoptic_seg
    ids = set(pan.data.unique().tolist()) - {0}
    assert ids == {s_["id"] for s_ in pan.metainfo["segments_info"]}
    assert all(set(s_) == {"id", "category", "isthing"} for s_ in pan.metainfo["segments_info"])
    # the tensor mode and mmseg's inference path work too
    probs, logits = model._forward(_inputs())
    assert probs.shape == (1, 8, len(CLASSES)) and logits.shape == (1, 8, 16, 16)
    assert torch.allclose(probs.sum(-1), torch.ones(1, 8), atol=1e-5)


def test_oracle_masks_with_a_perfect_classifier_gives_the_ground_truth_back():
    model = _build(test_cfg=dict(extra_modes=("oracle_masks",)))
    model.eval()
    s = _sample()
    gt_sem = s.gt_sem_seg.data[0]
    _perfect_classifier(model, gt_sem)
    out = model.predict(_inputs(), [s])[0]
    assert torch.equal(out.pred_sem_seg_oracle_masks.data[0], gt_sem)
    pan = out.pred_panoptic_seg_oracle_masks
    gt_ids = s.gt_panoptic_seg.data[0]
    cats = {x["id"]: x["category"] for x in pan.metainfo["segments_info"]}
    assert len(cats) == 3
    for info in s.gt_panoptic_seg.metainfo["segments_info"]:
        region = gt_ids == info["id"]
        pred = pan.data[0][region].unique()
        assert pred.numel() == 1 and cats[int(pred)] == info["category"]
    assert int(pan.data[0][gt_ids == 0].abs().sum()) == 0


def test_oracle_classes_gives_matched_proposals_their_true_class():
    # a stand-in generator whose proposals are the ground-truth segments + junk: the oracle is exact
    model = _build(gen=dict(type="_GtGeneratorForTests"), test_cfg=dict(extra_modes=("oracle_classes",)))
    model.eval()
    s = _sample()
    with torch.no_grad():
        out = model.predict(_inputs(), [s])[0]
    assert torch.equal(out.pred_sem_seg_oracle_classes.data[0], s.gt_sem_seg.data[0])
    infos = out.pred_panoptic_seg_oracle_classes.metainfo["segments_info"]
    assert sorted((x["category"], x["isthing"]) for x in infos) == [(0, 0), (1, 1), (2, 1)]

    # a random generator: every labelled pixel carries the class of the ground-truth segment its
    # (Hungarian-matched) proposal was matched to
    model = _build(test_cfg=dict(extra_modes=("oracle_classes",), oracle_match_iou=0.0))
    model.eval()
    with torch.no_grad():
        gen = model.extract_feat(_inputs())
        out = model.predict(_inputs(), [s])[0]
    binary = nn.functional.interpolate(gen["mask_logits"], size=(64, 64), mode="bilinear").sigmoid()[0] >= 0.5
    gt = gt_masks_from_panoptic(s, include_crowd=True)
    rows, cols, _ = match_by_iou(binary, gt.masks)
    assert rows.numel() > 0
    sem = out.pred_sem_seg_oracle_classes.data[0]
    allowed = torch.full((64, 64), False)
    for r, c in zip(rows.tolist(), cols.tolist()):
        allowed |= binary[r] & (sem == gt.categories[c])
    labelled = sem != 255
    assert labelled.any() and bool(allowed[labelled].all())
    covered = binary[rows].any(0)
    assert bool((sem[~covered] == 255).all())  # pixels of unmatched proposals only are void


def _panoptic_of(model):
    return lambda masks, probs: model._panoptic(masks, probs, [False, True, True])


def test_oracle_classes_match_at_iou_over_half_by_default():
    """FISA's reading (methods.md, bottleneck analysis): a proposal gets its true class only when it
    matches its segment with IoU > 0.5. A proposal covering a quarter of 'dog' stays void by default and
    takes 'dog' with the pre-issue-13 threshold 0.0 (the switch)."""
    s = _sample()
    ids = s.gt_panoptic_seg.data[0]
    masks = torch.full((1, 2, 64, 64), -10.0)
    masks[0, 0][ids == 1] = 10.0  # 'sky' exactly: IoU 1
    quarter = torch.zeros(64, 64, dtype=torch.bool)
    quarter[32:48, :14] = True  # half the rows and half the columns of 'dog' (32 x 28 px): IoU 0.25
    masks[0, 1][quarter] = 10.0
    probs = masks.sigmoid()
    default = _build(test_cfg=dict(extra_modes=("oracle_classes",)))
    assert default.test_cfg["oracle_match_iou"] == 0.5
    sem, _ = default.oracle.oracle_classes(s, probs[0], default.num_classes, _panoptic_of(default))
    assert torch.equal(sem.data[0][ids == 1], torch.zeros(int((ids == 1).sum()), dtype=torch.long))
    assert bool((sem.data[0][quarter] == 255).all())
    loose = _build(test_cfg=dict(extra_modes=("oracle_classes",), oracle_match_iou=0.0))
    sem, _ = loose.oracle.oracle_classes(s, probs[0], loose.num_classes, _panoptic_of(loose))
    assert bool((sem.data[0][quarter] == 1).all())
    with pytest.raises(ValueError, match="oracle_match_iou"):
        _build(test_cfg=dict(oracle_match_iou=1.0))


def test_ensemble_formula_on_hand_made_probabilities():
    p_in = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    p_out = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    alpha = torch.tensor([0.4, 0.8])
    got = OVMaskClassSegmentor.ensemble_probs(p_in, p_out, alpha)
    for row in range(2):
        raw = [p_in[row, c].item() ** (1 - alpha[c].item()) * p_out[row, c].item() ** alpha[c].item()
               for c in range(2)]
        want = torch.tensor([r / sum(raw) for r in raw])
        assert torch.allclose(got[row], want, atol=1e-6)


def test_training_vocabulary_survives_a_state_dict_round_trip_and_drives_the_split():
    model = _build(in_vocab_head=dict(hidden_dim=16), ensemble=dict(alpha_seen=0.3), train_cfg=dict(match_iou=0.0))
    assert model.ensemble == dict(alpha_seen=0.3, alpha_unseen=0.8)
    model.dataset_meta = dict(classes=CLASSES, unseen_classes=["cat", "tree"])
    assert model.seen_mask().tolist() == [True, True, False, False]  # fallback: dataset_meta
    model.set_vocabulary(("sky", "dog", "cat"), thing_classes=THINGS)  # the training vocabulary
    model.train()
    model.loss(_inputs(), [_sample()])
    state = model.state_dict()
    assert state["_extra_state"] == {"train_classes": ["sky", "dog", "cat"]}
    fresh = _build(in_vocab_head=dict(hidden_dim=16), ensemble=dict())
    fresh.dataset_meta = dict(classes=CLASSES, unseen_classes=["cat", "tree"])  # the recorded split wins
    fresh.load_state_dict(state)
    fresh.set_vocabulary(CLASSES, thing_classes=THINGS)
    assert fresh.seen_mask().tolist() == [True, True, True, False]
    fresh.set_vocabulary(("tree", "sky"))
    assert fresh.seen_mask().tolist() == [False, True]


def test_generator_checkpoint_is_loaded_and_frozen(tmp_path):
    torch.manual_seed(3)
    src = MODELS.build(GEN)
    path = tmp_path / "gen.pth"
    torch.save({"state_dict": {f"mask_generator.{k}": v for k, v in src.state_dict().items()}}, path)
    model = _build(mask_generator_checkpoint=str(path))
    model.init_weights()  # the Runner's initialisation must not overwrite the loaded weights
    for k, v in src.state_dict().items():
        assert torch.equal(model.mask_generator.state_dict()[k], v), k
    assert not any(p.requires_grad for p in model.mask_generator.parameters())


# ----------------------------------------------------------------------------- Runner + mmseg.apis
def _panoptic_ds(root, name, split):
    return dict(type="OVPanopticDataset", data_root=str(root / name), ann_file=f"panoptic_{split}.json",
                vocabulary="vocabulary.json", data_prefix=dict(img_path="", seg_map_path=f"panoptic/{split}"),
                pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadPanopticAnnotations"),
                          dict(type="PackPanopticInputs")])


def test_runner_train_test_and_inference_model(tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmseg.apis import inference_model, init_model

    from ovbench.data.synth.writers import ensure_synth_benchmark

    root = ensure_synth_benchmark(root=tmp_path / "synth", scale=0.02)
    loader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                  sampler=dict(type="DefaultSampler", shuffle=False), dataset=_panoptic_ds(root, "synth_large", "val"))
    modes = ("oracle_masks", "oracle_classes")
    evaluators = [dict(type="OpenVocabIoUMetric"), dict(type="PanopticQualityMetric")]
    for m in modes:
        evaluators += [dict(type="OpenVocabIoUMetric", pred_key=f"pred_sem_seg_{m}", prefix=m),
                       dict(type="PanopticQualityMetric", pred_key=f"pred_panoptic_seg_{m}", prefix=m)]
    cfg = Config(dict(
        default_scope="mmseg",
        work_dir=str(tmp_path / "work"),
        model=dict(type="OVMaskClassSegmentor", clip=CLIP, mask_generator=GEN,
                   data_preprocessor=dict(type="SegDataPreProcessor", mean=[122.8, 116.7, 104.1],
                                          std=[68.5, 66.6, 70.3], bgr_to_rgb=True, size=(64, 64)),
                   clip_peft=None, train_cfg=dict(match_iou=0.0), test_cfg=dict(extra_modes=modes)),
        train_dataloader=dict(batch_size=2, num_workers=0, persistent_workers=False,
                              sampler=dict(type="InfiniteSampler", shuffle=True),
                              dataset=_panoptic_ds(root, "synth_train", "train")),
        test_dataloader=loader, test_evaluator=evaluators, test_cfg=dict(type="TestLoop"),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=2, val_interval=100),
        optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3)),
        custom_hooks=[dict(type="VocabularyHook")],
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=2),
                           logger=dict(type="LoggerHook", interval=1)),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
        log_level="WARNING",
    ))
    cfg.model.pop("clip_peft")
    cfg.model.clip = dict(CLIP, peft=dict(type="lora", r=2))
    runner = Runner.from_cfg(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner.train()
        metrics = runner.test()
    assert not [w for w in caught if "thing_classes" in str(w.message)]
    assert runner.model._thing_classes == runner.test_dataloader.dataset.metainfo["thing_classes"]
    for key in ("mIoU", "PQ", "oracle_masks/mIoU", "oracle_masks/PQ", "oracle_classes/mIoU", "oracle_classes/PQ"):
        assert key in metrics, sorted(metrics)
    model = runner.model
    assert model._train_classes == tuple(runner.train_dataloader.dataset.metainfo["classes"])
    # the oracles can only help over the random generator + barely trained classifier
    assert metrics["oracle_classes/PQ"] >= metrics["PQ"]

    ckpt = tmp_path / "work" / "iter_2.pth"
    cfg.model.test_cfg = dict(extra_modes=())
    cfg.test_pipeline = [dict(type="LoadImageFromFile"), dict(type="PackSegInputs")]  # no ground truth
    loaded = init_model(cfg, str(ckpt), device="cpu")
    img = next((root / "synth_large" / "img_dir" / "val").iterdir())
    result = inference_model(loaded, str(img))
    n_train = len(loaded.dataset_meta["classes"])  # init_model restores the training set's meta
    assert result.pred_sem_seg.data.shape[-2:] == (64, 64)
    assert int(result.pred_sem_seg.data.max()) < n_train or int(result.pred_sem_seg.data.max()) == 255
    assert result.pred_panoptic_seg.data.shape[-2:] == (64, 64)
    assert loaded._train_classes == model._train_classes


@pytest.mark.parametrize("name,trains", [
    ("fisa", ("backbone.clip.peft_method.", "seve.")), ("fcclip", ("in_vocab_head.",)), ("frozen", ()),
    ("lora", ("backbone.clip.peft_method.",)), ("hclip", ("backbone.clip.peft_method.",)), ("full", ("backbone.clip.",)),
])
def test_synth_maskcls_configs_build_and_train_what_they_say(name, trains):
    from pathlib import Path

    from mmengine.config import Config

    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / "configs" / "synth" / "maskcls" / f"{name}.py"))
    assert cfg.model.mask_generator_checkpoint == cfg.mask_generator_checkpoint  # the one top-level switch
    assert "oracle_classes" in cfg.model.test_cfg.extra_modes
    assert {e.get("prefix") for e in cfg.test_evaluator} >= {None, "oracle_masks", "oracle_classes"}
    model = MODELS.build(cfg.model)  # loads the shipped stage-1 generator: the generator dicts must agree
    trainable = _trainable(model)
    assert bool(trainable) == bool(trains)
    assert all(n.startswith(trains) for n in trainable), sorted(trainable)[:5]
