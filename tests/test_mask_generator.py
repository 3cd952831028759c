"""The class-agnostic mask generator (stage 1 of FISA), its matcher/losses, segmentor and recall metric."""
from __future__ import annotations

import torch

from ovbench.models.heads.mask_generator import QueryMaskGenerator


def test_generator_shapes_and_interface():
    torch.manual_seed(0)
    gen = QueryMaskGenerator()
    n_params = sum(p.numel() for p in gen.parameters())
    assert 100_000 <= n_params <= 400_000, n_params
    gen.train()
    out = gen(torch.randn(2, 3, 64, 64))
    assert out["mask_logits"].shape == (2, gen.num_queries, 16, 16)
    assert out["objectness"].shape == (2, gen.num_queries)
    assert out["mask_features"].shape == (2, gen.mask_feature_dim, 16, 16)
    assert out["queries"].shape == (2, gen.num_queries, gen.query_dim)
    assert len(out["aux"]) == gen.num_layers  # initial prediction + all layers but the last
    for m, o in out["aux"]:
        assert m.shape == out["mask_logits"].shape and o.shape == out["objectness"].shape
    gen.eval()
    out = gen(torch.randn(1, 3, 96, 128))  # any size divisible by 16
    assert out["mask_logits"].shape == (1, 16, 24, 32) and "aux" not in out


# ----------------------------------------------------------------------------- helpers
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mmengine.structures import InstanceData, PixelData  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from ovbench.evaluation.proposal_recall import ProposalRecallMetric  # noqa: E402
from ovbench.models.heads.mask_matching import (  # noqa: E402
    MaskProposalCriterion,
    gt_masks_from_panoptic,
    match_by_iou,
)
from ovbench.models.segmentors.mask_proposal_segmentor import MaskProposalSegmentor, load_mask_generator  # noqa: E402

SMALL = dict(num_queries=8, channels=(8, 16, 16, 16), mask_feature_dim=16, query_dim=32, num_layers=2,
             ffn_dim=64)


def _sample(ids: torch.Tensor, infos: list) -> SegDataSample:
    s = SegDataSample(metainfo=dict(img_shape=tuple(ids.shape), ori_shape=tuple(ids.shape)))
    s.gt_panoptic_seg = PixelData(data=ids[None].long(), metainfo=dict(segments_info=infos))
    return s


def _info(i, cat, thing=1, crowd=0):
    return dict(id=i, category=cat, iscrowd=crowd, isthing=thing)


def _scene(seed: int, size: int = 64):
    """An image of 2-3 flat-coloured rectangles on a coloured background, and its panoptic sample."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((size, size), 1, dtype=torch.long)
    img = torch.empty(3, size, size)
    img[:] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    infos = [_info(1, 0, thing=0)]
    for k in range(2, 4 + seed % 2):
        y0, x0 = (torch.randint(0, size // 2, (2,), generator=g)).tolist()
        h, w = (torch.randint(size // 6, size // 2, (2,), generator=g)).tolist()
        ids[y0:y0 + h, x0:x0 + w] = k
        img[:, y0:y0 + h, x0:x0 + w] = torch.rand(3, 1, 1, generator=g) * 2 - 1
        infos.append(_info(k, k))
    infos = [s for s in infos if (ids == s["id"]).any()]
    return img, _sample(ids, infos)


# ----------------------------------------------------------------------------- generator
def test_generator_deterministic_under_seed():
    x = torch.randn(1, 3, 64, 64)
    outs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        gen = QueryMaskGenerator(**SMALL).eval()
        outs.append(gen(x)["mask_logits"])
    assert torch.equal(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_generator_rejects_bad_config():
    with pytest.raises(ValueError, match="memory_strides"):
        QueryMaskGenerator(memory_strides=(32,))
    with pytest.raises(ValueError, match="num_heads"):
        QueryMaskGenerator(query_dim=30, num_heads=4)


def test_masked_attention_blocks_outside_previous_mask():
    gen = QueryMaskGenerator(**SMALL)
    logits = torch.full((1, 8, 4, 4), -5.0)
    logits[0, 0, :2, :2] = 5.0  # query 0: top-left quarter; the others empty -> attend everywhere
    blocked = gen.attention_mask(logits, (4, 4))
    assert blocked.shape == (gen.num_heads * 1, 8, 16)
    expect0 = torch.ones(4, 4, dtype=torch.bool)
    expect0[:2, :2] = False
    assert torch.equal(blocked[0, 0], expect0.flatten())
    assert not blocked[:, 1:].any()


# ----------------------------------------------------------------------------- ground truth
def test_gt_masks_from_panoptic_skips_crowd_and_void():
    ids = torch.tensor([[0, 1, 1, 2], [0, 1, 3, 3], [5, 5, 3, 3], [5, 5, 0, 0]])
    s = _sample(ids, [_info(1, 4, 0), _info(2, 7, 1, crowd=1), _info(3, 2, 1), _info(5, 9, 0), _info(8, 1)])
    gt = gt_masks_from_panoptic(s)  # id 8 absent from the map -> dropped; crowd (2) skipped
    assert gt.ids.tolist() == [1, 3, 5]
    assert gt.categories.tolist() == [4, 2, 9]
    assert gt.isthing.tolist() == [False, True, False]
    assert torch.equal(gt.masks[1], ids == 3)
    assert gt_masks_from_panoptic(s, include_crowd=True).ids.tolist() == [1, 2, 3, 5]
    assert gt_masks_from_panoptic(s.to_dict()).ids.tolist() == [1, 3, 5]  # the evaluator's dict form
    small = gt_masks_from_panoptic(s, size=(2, 2))  # nearest: rows/cols 0 and 2
    assert small.masks.shape[1:] == (2, 2)
    with pytest.raises(KeyError, match="gt_panoptic_seg"):
        gt_masks_from_panoptic(SegDataSample())


# ----------------------------------------------------------------------------- matching and losses
def _gt_masks():
    m = torch.zeros(3, 8, 8, dtype=torch.bool)
    m[0, :4] = True
    m[1, 4:, :4] = True
    m[2, 4:, 4:] = True
    return m


def test_matcher_recovers_permutation_and_loss_is_small():
    gt = _gt_masks()
    perm = [5, 1, 3]  # query perm[j] predicts gt j exactly; the other queries predict nothing
    logits = torch.full((1, 6, 8, 8), -12.0)
    obj = torch.full((1, 6), -12.0)
    for j, q in enumerate(perm):
        logits[0, q][gt[j]] = 12.0
        obj[0, q] = 12.0
    crit = MaskProposalCriterion()
    rows, cols = crit.match(logits, obj, [gt])[0]
    assert dict(zip(cols.tolist(), rows.tolist())) == {0: 5, 1: 1, 2: 3}
    losses = crit.single(logits, obj, [gt])
    assert all(float(v) < 1e-3 for v in losses.values()), losses
    # a wrong assignment costs more: swap two predictions' masks -> the matcher follows the masks
    logits2 = logits.clone()
    logits2[0, [5, 1]] = logits[0, [1, 5]]
    rows2, cols2 = crit.match(logits2, obj, [gt])[0]
    assert dict(zip(cols2.tolist(), rows2.tolist())) == {0: 1, 1: 5, 2: 3}
    # deep supervision: the aux predictions add their own losses
    both = crit(dict(mask_logits=logits, objectness=obj, aux=[(torch.zeros_like(logits), obj)]), [gt])
    assert float(both["loss_mask"]) > float(losses["loss_mask"]) + 1.0


def test_objectness_loss_weights_unmatched_queries():
    gt = _gt_masks()[:1]
    logits = torch.zeros(1, 2, 8, 8)
    obj = torch.zeros(1, 2)  # BCE(0, y) = log 2 for both queries
    out = MaskProposalCriterion(loss_obj=1.0, no_object_weight=0.1).single(logits, obj, [gt])
    assert float(out["loss_obj"]) == pytest.approx(np.log(2), rel=1e-5)  # weighted mean of equal terms
    obj = torch.tensor([[0.0, 3.0]])  # query 1 confident, query 0 unsure
    out = MaskProposalCriterion(loss_obj=1.0, cost_bce=0, cost_dice=0, no_object_weight=0.1).single(logits, obj, [gt])
    # query 1 matched (cost -sigmoid): BCE(3, 1); query 0 unmatched: 0.1 * BCE(0, 0)
    bce1 = float(torch.nn.functional.softplus(torch.tensor(-3.0)))
    assert float(out["loss_obj"]) == pytest.approx((bce1 + 0.1 * np.log(2)) / 1.1, rel=1e-5)
    # no ground truth: every query is pushed to 0 and the mask losses are zero
    none = MaskProposalCriterion().single(logits, obj, [torch.zeros(0, 8, 8, dtype=torch.bool)])
    assert float(none["loss_mask"]) == 0.0 and float(none["loss_obj"]) > 0


def test_match_by_iou_known_values():
    gt = torch.zeros(2, 4, 4, dtype=torch.bool)
    gt[0, :2] = True  # 8 px
    gt[1, 2:] = True  # 8 px
    pred = torch.zeros(3, 4, 4, dtype=torch.bool)
    pred[0, 2:, :2] = True  # inside gt1: IoU 4/8
    pred[1, :2, :] = True
    pred[1, 2, 0] = True  # gt0 + 1 px: IoU 8/9 with gt0, 1/11 with gt1
    pred[2, 2:] = True  # == gt1: IoU 1
    p, g, iou = match_by_iou(pred, gt)
    assert p.tolist() == [1, 2] and g.tolist() == [0, 1]
    assert iou.tolist() == pytest.approx([8 / 9, 1.0])
    p, g, iou = match_by_iou(pred[:1], gt)  # only pred 0 overlaps gt 1; no zero-IoU pair returned
    assert p.tolist() == [0] and g.tolist() == [1] and iou.tolist() == pytest.approx([0.5])
    assert match_by_iou(pred, gt, min_iou=0.9)[0].tolist() == [2]
    with pytest.raises(ValueError, match="sizes differ"):
        match_by_iou(pred, gt[:, :2])


# ----------------------------------------------------------------------------- segmentor
def _segmentor(seed=0, **gen):
    torch.manual_seed(seed)
    return MaskProposalSegmentor(mask_generator=dict(SMALL, **gen))


def test_segmentor_overfits_two_scenes():
    seg = _segmentor()
    imgs, samples = zip(*(_scene(s) for s in (0, 1)))
    x = torch.stack(imgs)
    opt = torch.optim.AdamW(seg.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        losses = seg.loss(x, list(samples))
        total = sum(v for k, v in losses.items() if "loss" in k)
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    assert history[-1] < 0.5 * history[0], history[::10]
    seg.eval()
    with torch.no_grad():
        out = seg.predict(x, [_scene(s)[1] for s in (0, 1)])
    metric = ProposalRecallMetric()
    metric.dataset_meta = {}
    metric.process({}, [s.to_dict() for s in out])
    res = metric.compute_metrics(metric.results)
    assert res["recall50"] >= 50.0, res  # the training scenes themselves are mostly recovered


def test_segmentor_predict_fields():
    seg = _segmentor().eval()
    img, sample = _scene(0)
    sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(32, 48)))
    with torch.no_grad():
        out = seg.predict(img[None], [sample])[0]
    assert out.pred_proposals.masks.shape == (8, 32, 48) and out.pred_proposals.masks.dtype == torch.bool
    assert out.pred_proposals.scores.shape == (8,)
    assert out.pred_agnostic_seg.data.shape == (1, 32, 48)


def test_agnostic_panoptic_inference():
    seg = _segmentor()
    seg.test_cfg.update(score_thr=0.5, overlap_thr=0.8)
    probs = torch.zeros(3, 4, 4)
    probs[0, :, :2] = 0.9  # left half
    probs[1, :, 1:] = 0.8  # right 3/4: loses column 1 to query 0 -> 2/3 of its mask < 0.8 -> dropped
    probs[2, :2, 2:] = 0.9  # low score -> ignored
    out = seg.agnostic_panoptic(probs, torch.tensor([0.9, 0.9, 0.1]))
    expect = torch.zeros(4, 4, dtype=torch.long)
    expect[:, :2] = 1
    assert torch.equal(out, expect)
    seg.test_cfg.update(overlap_thr=0.5)
    out = seg.agnostic_panoptic(probs, torch.tensor([0.9, 0.9, 0.1]))
    expect[:, 2:] = 2
    assert torch.equal(out, expect)


def test_load_mask_generator_round_trip(tmp_path):
    from mmengine.runner import save_checkpoint

    seg = _segmentor(seed=1)
    path = str(tmp_path / "stage1.pth")
    save_checkpoint(dict(state_dict=seg.state_dict(), meta=dict(seed=1)), path)
    gen = QueryMaskGenerator(**SMALL).eval()
    x = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(gen(x)["mask_logits"], seg.mask_generator.eval()(x)["mask_logits"])
    load_mask_generator(gen, path)
    assert torch.equal(gen(x)["mask_logits"], seg.mask_generator(x)["mask_logits"])
    with pytest.raises(KeyError, match="do not fit"):
        load_mask_generator(QueryMaskGenerator(**dict(SMALL, num_layers=3)), path)
    with pytest.raises(KeyError, match="no weights under prefix"):
        load_mask_generator(gen, path, prefix="generator.")


# ----------------------------------------------------------------------------- metric
def test_proposal_recall_metric_hand_computed():
    # 4x4 map: stuff segment 1 (top two rows, 8 px), thing 2 (bottom-left 2x2), thing 3 (bottom-right
    # 2x2, crowd: not a target, but not removed from a proposal's union either -- PQ removes only void).
    ids = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    s = _sample(ids, [_info(1, 0, thing=0), _info(2, 1), _info(3, 1, crowd=1)])
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :2, :3] = True  # 6/8 of stuff -> IoU 0.75
    masks[1, 2:, :] = True  # thing 2 + the crowd region -> IoU 4/8 = 0.5, not > 0.5
    masks[2, :, :] = True  # everything, score below threshold
    s.pred_proposals = InstanceData(masks=masks, scores=torch.tensor([0.9, 0.8, 0.1]))
    pan = torch.zeros(4, 4, dtype=torch.long)
    pan[:2, :2] = 4  # stuff: IoU 4/8 = 0.5, not > 0.5 -> FN, and an FP
    pan[2:, :2] = 7  # thing 2: TP, IoU 1
    pan[2:, 2:] = 9  # entirely on the crowd region: not an FP
    s.pred_agnostic_seg = PixelData(data=pan[None])
    metric = ProposalRecallMetric(score_thr=0.5)
    metric.dataset_meta = {}
    metric.process({}, [s.to_dict()])
    # second image: only a thing, missed entirely
    ids2 = torch.tensor([[0, 0], [0, 5]])
    s2 = _sample(ids2, [_info(5, 2)])
    s2.pred_proposals = InstanceData(masks=torch.zeros(1, 2, 2, dtype=torch.bool), scores=torch.ones(1))
    s2.pred_agnostic_seg = PixelData(data=torch.zeros(1, 2, 2, dtype=torch.long))
    metric.process({}, [s2.to_dict()])
    res = metric.compute_metrics(metric.results)
    assert res["recall50"] == pytest.approx(100 / 3, abs=0.01)
    assert res["recall50_things"] == 0.0 and res["recall50_stuff"] == 100.0
    assert res["mBIoU"] == pytest.approx(100 * (0.75 + 0.5 + 0) / 3, abs=0.01)
    assert res["mBIoU_things"] == 25.0
    assert res["pan_recall50"] == pytest.approx(100 / 3, abs=0.01)
    assert res["pan_recall50_stuff"] == 0.0 and res["pan_recall50_things"] == 50.0
    assert res["pan_precision50"] == 50.0  # 1 TP of 2 counted predictions (the crowd one is not)
    # TP 1 (IoU 1), FP 1, FN 2 -> 1 / (1 + 0.5 + 1)
    assert res["agnostic_PQ"] == pytest.approx(100 / 2.5, abs=0.01)
    assert res["num_gt"] == 1.5 and res["num_pred"] == 1.5
    assert "recall50_unseen" not in res  # no split in dataset_meta
    # with a split: category 2 (image 2's missed thing) unseen, categories 0 and 1 seen
    metric.dataset_meta = dict(classes=("a", "b", "c"), unseen_classes=("c",))
    res = metric.compute_metrics(metric.results)
    assert res["recall50_seen"] == 50.0 and res["recall50_unseen"] == 0.0
    assert res["mBIoU_seen"] == pytest.approx(62.5)
    with pytest.raises(KeyError, match="pred_proposals"):
        metric.process({}, [_sample(ids2, [_info(5, 2)]).to_dict()])


def test_proposal_recall_follows_pq_crowd_rule():
    """Issue 13's case: gt [[1, 1, 2, 2]] with segment 2 a crowd region, one proposal on all four pixels.
    PQ (panopticapi) removes only void from the union: IoU 2/4 = 0.5, not a match, so recall50 = 0 and
    class-agnostic PQ = 0 (the prediction is half on crowd, not more: a false positive). The literal PQ
    reference of tests/pq_reference.py, every segment in one class, agrees."""
    from pq_reference import reference_image_stats

    ids = torch.tensor([[1, 1, 2, 2]])
    infos = [_info(1, 0), _info(2, 1, crowd=1)]
    s = _sample(ids, infos)
    s.pred_proposals = InstanceData(masks=torch.ones(1, 1, 4, dtype=torch.bool), scores=torch.ones(1))
    s.pred_agnostic_seg = PixelData(data=torch.ones(1, 1, 4, dtype=torch.long))
    metric = ProposalRecallMetric()
    metric.dataset_meta = {}
    metric.process({}, [s.to_dict()])
    res = metric.compute_metrics(metric.results)
    assert res["recall50"] == 0.0 and res["mBIoU"] == 50.0
    assert res["pan_recall50"] == 0.0 and res["agnostic_PQ"] == 0.0 and res["pan_precision50"] == 0.0
    agnostic = [dict(i, category=0) for i in infos]
    ref = reference_image_stats(ids.numpy(), agnostic, np.ones((1, 4), np.int64), [dict(id=1, category=0)])[0]
    assert (ref["tp"], ref["fp"], ref["fn"]) == (0, 1, 1)
    # more than half on crowd: not a false positive (void + crowd, as PQ)
    s2 = _sample(torch.tensor([[1, 2, 2, 2]]), [_info(1, 0), _info(2, 1, crowd=1)])
    s2.pred_proposals = InstanceData(masks=torch.ones(1, 1, 4, dtype=torch.bool), scores=torch.ones(1))
    s2.pred_agnostic_seg = PixelData(data=torch.ones(1, 1, 4, dtype=torch.long))
    assert metric.image_stats(s2.to_dict())["fp"] == 0


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.49, 1.0])
def test_proposal_recall_refuses_non_unique_thresholds(thr):
    with pytest.raises(ValueError, match="iou_thr"):
        ProposalRecallMetric(iou_thr=thr)


def test_stage1_config_builds_and_trains_one_step():
    """configs/synth/mask_generator.py: the model builds from it and its loss runs on a panoptic batch."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from conftest import REPO_ROOT

    cfg = Config.fromfile(str(REPO_ROOT / "configs" / "synth" / "mask_generator.py"))
    assert cfg.model.type == "MaskProposalSegmentor"
    assert [e["type"] for e in cfg.test_evaluator] == ["ProposalRecallMetric"]
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    imgs, samples = zip(*(_scene(s) for s in (0, 1)))
    batch = dict(inputs=[(x * 60 + 120).clamp(0, 255).to(torch.uint8) for x in imgs], data_samples=list(samples))
    losses = model.train_step(batch, _optim_wrapper(model))
    assert set(losses) >= {"loss", "loss_obj", "loss_mask", "loss_dice"} and torch.isfinite(losses["loss"])


def _optim_wrapper(model):
    from mmengine.optim import OptimWrapper

    return OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))


def test_shipped_generator_loads_by_name_and_is_sha_checked(tmp_path, monkeypatch):
    """mask_generator_checkpoint='synth' = the shipped stage-1 weights; a corrupted file is refused."""
    import shutil

    from mmengine.config import Config

    from ovbench.models.segmentors import mask_proposal_segmentor as mps

    from pathlib import Path

    cfg = Config.fromfile(str(Path(__file__).resolve().parents[1] / "configs" / "synth" / "mask_generator.py"))
    gen = QueryMaskGenerator(**{k: v for k, v in cfg.model.mask_generator.items() if k != "type"})
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    mps.load_mask_generator(gen, "synth")
    assert any(not torch.equal(before[k], v) for k, v in gen.state_dict().items())
    bad = tmp_path / "mask_generator_synth.pth"
    shutil.copy(mps.SHIPPED_GENERATORS["synth"], bad)
    shutil.copy(str(mps.SHIPPED_GENERATORS["synth"]) + ".sha256", str(bad) + ".sha256")
    with open(bad, "ab") as fh:
        fh.write(b"x")
    monkeypatch.setitem(mps.SHIPPED_GENERATORS, "synth", bad)
    with pytest.raises(RuntimeError, match="SHA-256 mismatch"):
        mps.load_mask_generator(gen, "synth")
