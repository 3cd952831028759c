"""Per-image evaluation statistics (issue 19, section 1): stored, recomputed exactly, resampled."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from ovbench.evaluation.image_stats import ImageStats, load_image_stats, save_image_stats
from test_pq import META, random_case, sample_of

CLASSES = tuple(f"c{i}" for i in range(7))
UNSEEN = ("c2", "c5")


def _iou_evaluator(n_images: int = 12, seed: int = 0) -> tuple:
    """An OpenVocabIoUMetric run over random 9x11 label maps (class 6 never occurs: a NaN class)."""
    rng = np.random.default_rng(seed)
    evaluator = Evaluator([dict(type="OpenVocabIoUMetric")])
    evaluator.dataset_meta = {"classes": CLASSES, "unseen_classes": UNSEEN}
    for _ in range(n_images):
        gt = rng.integers(0, 6, (9, 11))
        gt[rng.random((9, 11)) < 0.1] = 255
        pred = np.where(rng.random((9, 11)) < 0.6, gt, rng.integers(0, 6, (9, 11)))
        pred[pred == 255] = 0
        evaluator.process(data_samples=[{"pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
                                         "gt_sem_seg": {"data": torch.from_numpy(gt)[None]}}])
    metrics = evaluator.evaluate(n_images)
    return metrics, evaluator.metrics[0].image_stats


def test_iou_statistics_recompute_the_metric_exactly(tmp_path):
    metrics, stats = _iou_evaluator()
    assert stats.kind == "iou" and stats.values.shape == (12, len(CLASSES), 4)
    save_image_stats(tmp_path / "s.npz", {"toy": {"iou": stats}})
    loaded = load_image_stats(tmp_path / "s.npz")["toy"]["iou"]
    assert loaded.classes == CLASSES and loaded.unseen_classes == UNSEEN
    assert loaded.metrics() == metrics
    for key in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "aAcc"):  # the vectorised path, before rounding
        assert loaded.figure(key) == pytest.approx(metrics[key], abs=0.005)


def test_class_values_are_the_per_class_scores_the_mean_is_taken_over():
    metrics, stats = _iou_evaluator()
    unseen = stats.class_values("mIoU_unseen")
    assert unseen.shape == (len(UNSEEN),)
    assert np.nanmean(unseen) == pytest.approx(metrics["mIoU_unseen"], abs=0.005)
    every = stats.class_values("mIoU")
    assert np.isnan(every[6]) and np.isfinite(every[:6]).all()  # class 6 never occurs
    totals = stats.values.astype(float).sum(0)  # class 2 by hand: intersection / union
    assert every[2] == pytest.approx(100 * totals[2, 0] / totals[2, 1])
    with pytest.raises(KeyError, match="hIoU"):
        stats.class_values("hIoU")


def test_panoptic_statistics_recompute_the_metric_exactly(tmp_path):
    rng = np.random.default_rng(3)
    images = [random_case(rng) for _ in range(8)]
    evaluator = Evaluator([dict(type="PanopticQualityMetric"), dict(
        type="PanopticQualityMetric", pred_key="pred_panoptic_seg_oracle_masks", prefix="oracle_masks")])
    evaluator.dataset_meta = META
    for g, gs, p, ps in images:
        evaluator.process(data_samples=[sample_of(g, gs, p, ps, (g, gs))])
    metrics = evaluator.evaluate(len(images))
    from ovbench.evaluation.image_stats import collect

    by_tag = collect(evaluator.metrics)
    assert sorted(by_tag) == ["pq", "pq:pred_panoptic_seg_oracle_masks"]
    save_image_stats(tmp_path / "s.npz", {"set": by_tag})
    loaded = load_image_stats(tmp_path / "s.npz")["set"]
    assert loaded["pq"].metrics() == {k: v for k, v in metrics.items() if not k.startswith("oracle_masks/")}
    assert loaded["pq:pred_panoptic_seg_oracle_masks"].metrics()["PQ"] == metrics["oracle_masks/PQ"]
    for key in ("PQ", "PQ_th", "PQ_st", "PQ_seen", "PQ_unseen"):
        assert loaded["pq"].figure(key) == pytest.approx(metrics[key], abs=1e-9)
        assert np.nanmean(loaded["pq"].class_values(key)) == pytest.approx(metrics[key], abs=1e-9)


def test_bootstrap_resamples_images_and_is_seeded():
    metrics, stats = _iou_evaluator(n_images=40, seed=1)
    draws = stats.bootstrap("mIoU_unseen", n=400, seed=5)
    assert draws.shape == (400,)
    assert np.array_equal(draws, stats.bootstrap("mIoU_unseen", n=400, seed=5))
    assert not np.array_equal(draws, stats.bootstrap("mIoU_unseen", n=400, seed=6))
    # centred on the full-set figure, with a spread that shrinks as the set grows
    assert abs(np.mean(draws) - metrics["mIoU_unseen"]) < 2 * np.std(draws)
    small = ImageStats("iou", stats.values[:10], stats.classes, stats.unseen_classes, metric_args=stats.metric_args)
    assert np.std(small.bootstrap("mIoU_unseen", n=400)) > np.std(draws)
    # one resample by hand: the same multinomial draw, summed image by image
    rng = np.random.default_rng(5)
    counts = rng.multinomial(40, np.full(40, 1 / 40), size=400)[0]
    picked = np.repeat(np.arange(40), counts)
    assert draws[0] == pytest.approx(stats.figure("mIoU_unseen", picked))
    with pytest.raises(KeyError, match="mIoU_unseen"):
        stats.bootstrap("PQ")
