"""Panoptic quality: the vectorised core against an independent reference, hand cases, the metric."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from ovbench.data.panoptic_transforms import id_to_rgb
from ovbench.evaluation.panoptic_quality import FN, FP, IOU, TP, pq_average, pq_image_stats, pq_stats_from_files
from pq_reference import reference_image_stats, reference_pq

NUM_CLASSES = 6
THINGS = {0, 1, 2}


def random_case(rng: np.random.Generator, h: int = 18, w: int = 22):
    """gt and a perturbed prediction: void, crowd (sometimes twice per class), merges, splits, relabels."""
    gt = np.zeros((h, w), np.int64)
    for sid in rng.choice(np.arange(1, 3000), int(rng.integers(1, 9)), replace=False):
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y:y + rng.integers(2, h), x:x + rng.integers(2, w)] = sid
    for _ in range(int(rng.integers(0, 3))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y:y + rng.integers(1, 8), x:x + rng.integers(1, 8)] = 0
    present = [int(i) for i in np.unique(gt) if i]
    gt_segs = [{"id": i, "category": int(rng.integers(NUM_CLASSES)), "iscrowd": int(rng.random() < 0.2)}
               for i in present]
    if rng.random() < 0.3:  # listed but cropped away: ignored by both
        gt_segs.append({"id": 4000, "category": int(rng.integers(NUM_CLASSES)), "iscrowd": int(rng.random() < .5)})
    for s in gt_segs:
        s["isthing"] = int(s["category"] in THINGS)
    rng.shuffle(gt_segs)
    # prediction: gt ids renamed (two gt segments sometimes merged), then painted over
    rename = {i: int(v) for i, v in zip(present, rng.choice(np.arange(1, 70000), len(present), replace=False))}
    if len(present) > 1 and rng.random() < 0.3:
        rename[present[1]] = rename[present[0]]
    pred = np.vectorize(lambda v: rename.get(int(v), 0))(gt) if present else np.zeros_like(gt)
    if rng.random() < 0.5:  # void in gt often holds predictions
        pred[gt == 0] = rename[present[0]] if present and rng.random() < 0.5 else 0
    for _ in range(int(rng.integers(0, 5))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        value = int(rng.choice([0, 70001 + int(rng.integers(5)), *rename.values()] if rename else [0, 70001]))
        pred[y:y + rng.integers(1, 10), x:x + rng.integers(1, 10)] = value
    gt_cat = {s["id"]: s["category"] for s in gt_segs}
    pred_segs = []
    for pid in [int(i) for i in np.unique(pred) if i]:
        under = gt[pred == pid]
        under = under[under > 0]
        if under.size and rng.random() < 0.75:
            cat = gt_cat[int(np.bincount(under).argmax())]
        else:
            cat = int(rng.integers(NUM_CLASSES))
        pred_segs.append({"id": pid, "category": cat, "isthing": int(cat in THINGS)})
    return gt, gt_segs, pred, pred_segs


def as_array(stats_dict):
    out = np.zeros((NUM_CLASSES, 4))
    for c, st in stats_dict.items():
        out[c] = [st["iou"], st["tp"], st["fp"], st["fn"]]
    return out


@pytest.mark.parametrize("seed", range(300))
def test_random_images_match_the_reference(seed):
    gt, gs, pred, ps = random_case(np.random.default_rng(seed))
    ours = pq_image_stats(gt, gs, pred, ps, NUM_CLASSES)
    ref = as_array(reference_image_stats(gt, gs, pred, ps))
    np.testing.assert_array_equal(ours[:, [TP, FP, FN]], ref[:, [TP, FP, FN]])
    np.testing.assert_allclose(ours[:, IOU], ref[:, IOU], rtol=0, atol=1e-12)


def test_random_datasets_match_the_reference_averages():
    exercised = dict(tp=0, fp=0, fn=0, crowd=0, void_pred=0)
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        images = [random_case(rng) for _ in range(int(rng.integers(1, 6)))]
        stats = sum(pq_image_stats(g, gs, p, ps, NUM_CLASSES) for g, gs, p, ps in images)
        ref = reference_pq(images, NUM_CLASSES, THINGS)
        is_thing = np.array([c in THINGS for c in range(NUM_CLASSES)])
        for name, mask in (("all", None), ("things", is_thing), ("stuff", ~is_thing)):
            ours = pq_average(stats, mask)
            for k in ("pq", "sq", "rq"):
                if math.isnan(ref[name][k]):
                    assert math.isnan(ours[k])
                else:
                    assert abs(ours[k] - ref[name][k]) < 1e-9, (seed, name, k)
        exercised["tp"] += stats[:, TP].sum()
        exercised["fp"] += stats[:, FP].sum()
        exercised["fn"] += stats[:, FN].sum()
        exercised["crowd"] += sum(s["iscrowd"] for _, gs, _, _ in images for s in gs)
        exercised["void_pred"] += sum(int(((g == 0) & (p > 0)).sum()) for g, _, p, _ in images)
    assert all(v > 20 for v in exercised.values()), exercised


# --- hand-computed cases (1 x n strips) ---------------------------------------------------------

def seg(i, c, crowd=0):
    return {"id": i, "category": c, "iscrowd": crowd, "isthing": int(c in THINGS)}


def strip(*values):
    return np.array([values])


def test_perfect_match_is_100():
    gt = strip(1, 1, 2, 2, 2, 0)
    pred = strip(9, 9, 7, 7, 7, 0)
    stats = pq_image_stats(gt, [seg(1, 0), seg(2, 4)], pred, [seg(9, 0), seg(7, 4)], NUM_CLASSES)
    assert pq_average(stats) == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 2}


def test_iou_of_exactly_one_half_is_not_a_match():
    gt = strip(1, 1, 1, 1, 2, 2, 2, 2)
    pred = strip(5, 5, 6, 6, 6, 6, 6, 6)  # 5 vs 1: 2 / 4 = 0.5; 6 vs 2: 4 / 6
    stats = pq_image_stats(gt, [seg(1, 0), seg(2, 1)], pred, [seg(5, 0), seg(6, 1)], NUM_CLASSES)
    assert stats[0].tolist() == [0.0, 0, 1, 1]
    assert stats[1].tolist() == pytest.approx([2 / 3, 1, 0, 0])
    avg = pq_average(stats)
    assert avg["pq"] == pytest.approx((0 + 2 / 3) / 2) and avg["n"] == 2
    # one more pixel: 3 / 4 > 0.5 matches
    stats = pq_image_stats(gt, [seg(1, 0), seg(2, 1)], strip(5, 5, 5, 6, 6, 6, 6, 6),
                           [seg(5, 0), seg(6, 1)], NUM_CLASSES)
    assert stats[0].tolist() == [0.75, 1, 0, 0] and stats[1].tolist() == [0.8, 1, 0, 0]


def test_void_is_left_out_of_the_union_and_mostly_void_predictions_are_not_false_positives():
    # the prediction covers 2 void pixels and the 4 gt pixels: IoU = 4 / (6 + 4 - 4 - 2) = 1
    stats = pq_image_stats(strip(0, 0, 1, 1, 1, 1), [seg(1, 3)], strip(3, 3, 3, 3, 3, 3), [seg(3, 3)], NUM_CLASSES)
    assert stats[3].tolist() == [1.0, 1, 0, 0]
    gt, gs = strip(0, 0, 0, 0, 1, 1, 1, 1), [seg(1, 0)]
    # 3 of 4 pixels on void: ignored; the gt segment is missed
    stats = pq_image_stats(gt, gs, strip(7, 7, 7, 0, 7, 0, 0, 0), [seg(7, 2)], NUM_CLASSES)
    assert stats[2].tolist() == [0, 0, 0, 0] and stats[0].tolist() == [0, 0, 0, 1]
    # exactly half on void: a false positive (more than half is needed)
    stats = pq_image_stats(gt, gs, strip(0, 0, 7, 7, 7, 7, 0, 0), [seg(7, 2)], NUM_CLASSES)
    assert stats[2].tolist() == [0, 0, 1, 0]


def test_crowd_regions():
    gt = strip(1, 1, 1, 1, 2, 2, 2, 2)
    gs = [seg(1, 0, crowd=1), seg(2, 1)]
    # a prediction of the crowd's category on the crowd: neither TP nor FP; the crowd is not a FN
    stats = pq_image_stats(gt, gs, strip(5, 5, 5, 6, 6, 6, 6, 6), [seg(5, 0), seg(6, 1)], NUM_CLASSES)
    assert stats[0].tolist() == [0, 0, 0, 0] and stats[1].tolist() == [0.8, 1, 0, 0]
    assert pq_average(stats) == {"pq": 0.8, "sq": 0.8, "rq": 1.0, "n": 1}  # class 0 skipped
    # a perfect copy of a crowd segment is not a match either
    stats = pq_image_stats(gt, gs, strip(5, 5, 5, 5, 6, 6, 6, 6), [seg(5, 0), seg(6, 1)], NUM_CLASSES)
    assert stats[0].tolist() == [0, 0, 0, 0]
    # a crowd of another category does not excuse a prediction
    stats = pq_image_stats(gt, gs, strip(5, 5, 5, 6, 6, 6, 6, 6), [seg(5, 1), seg(6, 1)], NUM_CLASSES)
    assert stats[1].tolist() == [0.8, 1, 1, 0]
    assert pq_average(stats)["pq"] == pytest.approx(0.8 / 1.5)
    # two crowd segments of one category: only the last listed counts (panopticapi)
    gt2, gs2 = strip(1, 1, 3, 3, 2, 2, 2, 2), [seg(1, 0, crowd=1), seg(3, 0, crowd=1), seg(2, 1)]
    pred2 = strip(5, 5, 5, 8, 8, 8, 8, 8)  # 5 lies on crowd 1 (2 px) and crowd 3 (1 px)
    stats = pq_image_stats(gt2, gs2, pred2, [seg(5, 0), seg(8, 1)], NUM_CLASSES)
    assert stats[0, FP] == 1  # only 1 of its 3 pixels on the last crowd
    stats = pq_image_stats(gt2, gs2[::-1], pred2, [seg(5, 0), seg(8, 1)], NUM_CLASSES)
    assert stats[0, FP] == 0  # crowd 1 listed last: 2 of 3 pixels


def test_errors_name_the_problem():
    gt = strip(1, 1, 2, 2)
    gs = [seg(1, 0), seg(2, 1)]
    with pytest.raises(ValueError, match=r"img\.png: prediction map holds segment id\(s\) \[9\]"):
        pq_image_stats(gt, gs, strip(5, 5, 9, 9), [seg(5, 0)], NUM_CLASSES, source="img.png")
    with pytest.raises(ValueError, match=r"gt map holds segment id\(s\) \[2\]"):
        pq_image_stats(gt, gs[:1], strip(5, 5, 5, 5), [seg(5, 0)], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"prediction segments_info lists id\(s\) \[5\] more than once"):
        pq_image_stats(gt, gs, strip(5, 5, 5, 5), [seg(5, 0), seg(5, 1)], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"prediction segment 5 has category 6, outside the vocabulary \(0..5\)"):
        pq_image_stats(gt, gs, strip(5, 5, 5, 5), [seg(5, 6)], NUM_CLASSES)
    with pytest.raises(ValueError, match="ids must be > 0"):
        pq_image_stats(gt, gs + [seg(0, 1)], strip(5, 5, 5, 5), [seg(5, 0)], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"differ in shape"):
        pq_image_stats(gt, gs, np.zeros((2, 2), int), [], NUM_CLASSES)
    with pytest.raises(ValueError, match="lacks 'category'"):
        pq_image_stats(gt, gs, strip(5, 5, 5, 5), [{"id": 5, "category_id": 1}], NUM_CLASSES)


def test_large_ids_give_the_same_stats():
    rng = np.random.default_rng(7)
    gt, gs, pred, ps = random_case(rng)
    big = {s["id"]: s["id"] + (1 << 23) for s in ps}
    pred_big = np.vectorize(lambda v: big.get(int(v), 0))(pred)
    ps_big = [dict(s, id=big[s["id"]]) for s in ps]
    np.testing.assert_array_equal(pq_image_stats(gt, gs, pred, ps, NUM_CLASSES),
                                  pq_image_stats(gt, gs, pred_big, ps_big, NUM_CLASSES))
    with pytest.raises(ValueError, match="no segments_info entry"):
        pq_image_stats(gt, gs, pred_big, ps_big[1:], NUM_CLASSES)


# --- the metric through mmengine's Evaluator -------------------------------------------------------

CLASSES = tuple(f"class{i}" for i in range(NUM_CLASSES))
META = dict(classes=CLASSES, thing_classes=tuple(CLASSES[i] for i in sorted(THINGS)),
            unseen_classes=("class1", "class4"), ignore_index=255)


def sample_of(gt, gs, pred, ps, oracle=None):
    def semantic(ids, segs):
        sem = np.full(ids.shape, 255, np.int64)
        for s in segs:
            sem[ids == s["id"]] = s["category"]
        return PixelData(data=torch.from_numpy(sem)[None])

    s = SegDataSample(metainfo=dict(img_path="x.png"))
    s.gt_sem_seg = semantic(gt, gs)
    s.gt_panoptic_seg = PixelData(data=torch.from_numpy(gt)[None], metainfo=dict(segments_info=gs))
    s.pred_sem_seg = semantic(pred, ps)
    s.pred_panoptic_seg = PixelData(data=torch.from_numpy(pred)[None], metainfo=dict(segments_info=ps))
    if oracle is not None:
        s.set_data(dict(pred_panoptic_seg_oracle_masks=PixelData(
            data=torch.from_numpy(oracle[0])[None], metainfo=dict(segments_info=oracle[1])),
            pred_sem_seg_oracle_masks=semantic(gt, gs)))
    return s


def test_metric_end_to_end_with_oracle_rows():
    rng = np.random.default_rng(3)
    images = [random_case(rng) for _ in range(8)]
    oracle = []  # the gt without its crowd segments
    for g, gs, _, _ in images:
        crowd = [s["id"] for s in gs if s["iscrowd"]]
        oracle.append((np.where(np.isin(g, crowd), 0, g), [s for s in gs if not s["iscrowd"]]))
    evaluator = Evaluator([
        dict(type="PanopticQualityMetric", per_class=True),
        dict(type="PanopticQualityMetric", pred_key="pred_panoptic_seg_oracle_masks", prefix="oracle_masks"),
        dict(type="OpenVocabIoUMetric", pred_key="pred_sem_seg_oracle_masks", prefix="oracle_masks"),
        dict(type="OpenVocabIoUMetric"),
    ])
    evaluator.dataset_meta = META
    for (g, gs, p, ps), orc in zip(images, oracle):
        evaluator.process(data_samples=[sample_of(g, gs, p, ps, orc)])
    metrics = evaluator.evaluate(len(images))
    ref = reference_pq(images, NUM_CLASSES, THINGS)
    assert metrics["PQ"] == pytest.approx(100 * ref["all"]["pq"], abs=1e-9)
    assert metrics["SQ_th"] == pytest.approx(100 * ref["things"]["sq"], abs=1e-9)
    assert metrics["RQ_st"] == pytest.approx(100 * ref["stuff"]["rq"], abs=1e-9)
    unseen = [1, 4]
    per = ref["per_class"]
    ref_unseen = np.mean([per[c]["pq"] for c in unseen if c in per])
    ref_seen = np.mean([per[c]["pq"] for c in per if c not in unseen])
    assert metrics["PQ_unseen"] == pytest.approx(100 * ref_unseen, abs=1e-9)
    assert metrics["PQ_seen"] == pytest.approx(100 * ref_seen, abs=1e-9)
    for c in range(NUM_CLASSES):
        if c in per:
            assert metrics[f"PQ.class{c}"] == pytest.approx(100 * per[c]["pq"], abs=1e-9)
        else:
            assert math.isnan(metrics[f"PQ.class{c}"])
    # the oracle prediction is the gt without crowds: perfect
    assert metrics["oracle_masks/PQ"] == pytest.approx(100.0) and metrics["oracle_masks/mIoU"] == 100.0
    assert metrics["mIoU"] < 100.0 and metrics["PQ"] < 100.0


def test_metric_requires_thing_classes_and_counts_prediction_only_things():
    """Issue 13's case: thing class 0 matched perfectly, thing class 1 only predicted (an FP, on stuff
    class 2's segment, which is missed). With the
    category table (thing_classes) PQ_th = mean(100, 0) = 50; the gt's isthing flags alone would have
    called class 1 stuff and given 100. Without thing_classes the metric refuses."""
    gt = np.array([[1, 1, 3, 3]])
    pred = np.array([[1, 1, 2, 2]])
    gs = [dict(id=1, category=0, iscrowd=0, isthing=1), dict(id=3, category=2, iscrowd=0, isthing=0)]
    ps = [dict(id=1, category=0), dict(id=2, category=1)]
    evaluator = Evaluator(dict(type="PanopticQualityMetric"))
    evaluator.dataset_meta = dict(classes=("a", "b", "c"), thing_classes=("a", "b"))
    evaluator.process(data_samples=[sample_of(gt, gs, pred, ps)])
    metrics = evaluator.evaluate(1)
    assert metrics["PQ_th"] == pytest.approx(50.0) and metrics["PQ_st"] == 0.0
    rng = np.random.default_rng(11)
    images = [random_case(rng) for _ in range(5)]
    evaluator = Evaluator(dict(type="PanopticQualityMetric"))
    evaluator.dataset_meta = dict(classes=CLASSES)  # no thing_classes
    with pytest.raises(ValueError, match="thing_classes"):
        evaluator.process(data_samples=[sample_of(*images[0])])
    assert "PQ_unseen" not in _evaluate(images, dict(classes=CLASSES, thing_classes=()))  # no split: no seen/unseen


def _evaluate(images, meta):
    evaluator = Evaluator(dict(type="PanopticQualityMetric"))
    evaluator.dataset_meta = meta
    for img in images:
        evaluator.process(data_samples=[sample_of(*img)])
    return evaluator.evaluate(len(images))


def test_metric_missing_prediction_keys_are_named():
    rng = np.random.default_rng(11)
    images = [random_case(rng) for _ in range(1)]
    bad = Evaluator(dict(type="PanopticQualityMetric", pred_key="pred_panoptic_seg_oracle_classes"))
    bad.dataset_meta = META
    with pytest.raises(KeyError, match="no 'pred_panoptic_seg_oracle_classes'"):
        bad.process(data_samples=[sample_of(*images[0])])
    iou = Evaluator(dict(type="OpenVocabIoUMetric", pred_key="pred_sem_seg_oracle_classes"))
    iou.dataset_meta = META
    with pytest.raises(KeyError, match="no 'pred_sem_seg_oracle_classes'"):
        iou.process(data_samples=[sample_of(*images[0])])


# --- COCO files, and panopticapi itself when it is installed --------------------------------------

def write_coco(tmp_path, images, name):
    folder = tmp_path / name
    folder.mkdir()
    anns = []
    for k, (ids, segs) in enumerate(images):
        Image.fromarray(id_to_rgb(ids)).save(folder / f"{k}.png")
        anns.append({"image_id": k, "file_name": f"{k}.png", "segments_info": [
            {"id": s["id"], "category_id": 10 * s["category"] + 3, "iscrowd": s.get("iscrowd", 0),
             "area": int((ids == s["id"]).sum())} for s in segs]})
    return folder, anns


def test_coco_files_agree_with_panopticapi(tmp_path):
    rng = np.random.default_rng(5)
    cases = []
    while len(cases) < 20:
        g, gs, p, ps = random_case(rng)
        gs = [s for s in gs if (g == s["id"]).any()]  # panopticapi reads areas from the JSON: keep them true
        cases.append((g, gs, p, ps))
    gt_dir, gt_anns = write_coco(tmp_path, [(g, gs) for g, gs, _, _ in cases], "gt")
    pred_dir, pred_anns = write_coco(tmp_path, [(p, ps) for _, _, p, ps in cases], "pred")
    cats = [{"id": 10 * c + 3, "name": f"c{c}", "isthing": int(c in THINGS)} for c in range(NUM_CLASSES)]
    stats = pq_stats_from_files(list(zip(gt_anns, pred_anns)), str(gt_dir), str(pred_dir), cats)
    ref = as_array({c: st for c, st in reference_pq(cases, NUM_CLASSES)["per_class"].items()})
    np.testing.assert_allclose(stats, ref, rtol=0, atol=1e-9)
    evaluation = pytest.importorskip("panopticapi.evaluation")
    api = evaluation.pq_compute_single_core(0, list(zip(json.loads(json.dumps(gt_anns)),
                                                        json.loads(json.dumps(pred_anns)))),
                                            str(gt_dir), str(pred_dir), {c["id"]: c for c in cats})
    for c in range(NUM_CLASSES):
        st = api.pq_per_cat[10 * c + 3]
        assert [st.tp, st.fp, st.fn] == stats[c, [TP, FP, FN]].tolist()
        assert abs(st.iou - stats[c, IOU]) < 1e-9


def test_id_mapping_paths_agree():
    """Small and large ids (up to 2^31 - 1), ids equal in their low bits, other integer dtypes."""
    gt, gs = strip(1, 1, 2, 2, 3, 0), [seg(1, 0), seg(2, 1), seg(3, 2)]
    pred, ps = strip(5, 5, 6, 6, 6, 6), [seg(5, 0), seg(6, 1)]
    expected = pq_image_stats(gt, gs, pred, ps, NUM_CLASSES)
    for mapping, dtype in (({3: 1 + (1 << 16), 6: 5 + (1 << 20)}, np.int64),  # 1 and 1 + 2^16 collide
                           ({2: (1 << 31) - 1, 5: 3 << 29}, np.int64), ({}, np.uint16), ({}, np.int32)):
        def remap(a):
            return np.vectorize(lambda v: mapping.get(int(v), int(v)))(a).astype(dtype)

        got = pq_image_stats(remap(gt), [dict(s, id=mapping.get(s["id"], s["id"])) for s in gs],
                             remap(pred), [dict(s, id=mapping.get(s["id"], s["id"])) for s in ps], NUM_CLASSES)
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match=r"gt map holds segment id\(s\) \[7\]"):
        pq_image_stats(strip(1, 65537, 7), [seg(1, 0), seg(65537, 0)], strip(5, 5, 5), [seg(5, 0)], NUM_CLASSES)


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match=r"prediction map holds id -1 .*\[0, 2\^31\)"):
        pq_image_stats(strip(1, 1), [seg(1, 0)], strip(-1, 5), [seg(5, 0)], NUM_CLASSES)
    with pytest.raises(ValueError, match=r"gt map holds id .*2147483648"):
        pq_image_stats(strip(1, 2 ** 31), [seg(1, 0), seg(2 ** 31, 0)], strip(5, 5), [seg(5, 0)], NUM_CLASSES)
    with pytest.raises(TypeError, match="integer segment ids, got dtype float"):
        pq_image_stats(strip(1, 1), [seg(1, 0)], strip(5.0, 5.0), [seg(5, 0)], NUM_CLASSES)


def test_metric_accepts_data_elements_directly():
    from mmseg.registry import METRICS

    rng = np.random.default_rng(2)
    images = [random_case(rng) for _ in range(3)]
    metric = METRICS.build(dict(type="PanopticQualityMetric", prefix="direct"))
    metric.dataset_meta = META
    metric.process({}, [sample_of(*img) for img in images])  # SegDataSample / PixelData, not dicts
    got = metric.evaluate(len(images))
    assert got["direct/PQ"] == pytest.approx(100 * reference_pq(images, NUM_CLASSES, THINGS)["all"]["pq"], abs=1e-9)
