"""Mask2Former-style semantic / panoptic inference on hand-made proposals (hand-computed results)."""
import pytest
import torch

from ovbench.models.segmentors.panoptic_inference import panoptic_inference, semantic_inference


def _cols(cols, value=0.9, size=4):
    m = torch.zeros(size, size)
    m[:, cols] = value
    return m


def test_semantic_inference_sums_class_probabilities_over_masks():
    masks = torch.stack([_cols([0, 1], 1.0), _cols([1, 2, 3], 0.5)])
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    out = semantic_inference(masks, probs)
    assert out.shape == (2, 4, 4)
    # column 0: only proposal 0; column 1: both; column 3: only proposal 1
    assert torch.allclose(out[:, 0, 0], torch.tensor([0.7, 0.3]))
    assert torch.allclose(out[:, 0, 1], torch.tensor([0.7 + 0.1, 0.3 + 0.4]))
    assert torch.allclose(out[:, 0, 3], torch.tensor([0.1, 0.4]))
    with pytest.raises(ValueError, match="class_probs"):
        semantic_inference(masks, probs[:1])


def test_overlap_threshold_drops_a_mostly_hidden_segment():
    # A: columns 0-1 (8 px), weighted 0.81; B: columns 1-3 (12 px), weighted 0.765 -> A wins column 1,
    # B keeps 8 of its 12 pixels (0.67).
    masks = torch.stack([_cols([0, 1]), _cols([1, 2, 3])])
    scores = torch.tensor([0.9, 0.85])
    labels = torch.tensor([0, 1])
    ids, info = panoptic_inference(masks, scores, labels, [True, True], score_threshold=0.5, overlap_threshold=0.8)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[:, :2] = 1
    assert torch.equal(ids, expected)
    assert info == [{"id": 1, "category": 0, "isthing": 1}]

    ids, info = panoptic_inference(masks, scores, labels, [True, True], score_threshold=0.5, overlap_threshold=0.6)
    expected[:, 2:] = 2
    assert torch.equal(ids, expected)
    assert info == [{"id": 1, "category": 0, "isthing": 1}, {"id": 2, "category": 1, "isthing": 1}]


def test_stuff_of_one_class_is_merged_things_are_not():
    top, bottom = torch.zeros(4, 4), torch.zeros(4, 4)
    top[:2, :2] = 1.0
    bottom[2:, :2] = 1.0
    right_top, right_bottom = torch.zeros(4, 4), torch.zeros(4, 4)
    right_top[:2, 2:] = 1.0
    right_bottom[2:, 2:] = 1.0
    masks = torch.stack([top, bottom, right_top, right_bottom])
    scores = torch.full((4,), 0.9)
    labels = torch.tensor([1, 1, 0, 0])  # class 1 stuff, class 0 thing
    ids, info = panoptic_inference(masks, scores, labels, [True, False], score_threshold=0.5)
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 3, 3], [1, 1, 3, 3]])
    assert torch.equal(ids, expected)
    assert info == [{"id": 1, "category": 1, "isthing": 0}, {"id": 2, "category": 0, "isthing": 1},
                    {"id": 3, "category": 0, "isthing": 1}]


def test_score_threshold_is_strict_and_low_masks_stay_void():
    masks = torch.stack([_cols([0, 1]), _cols([2, 3])])
    labels = torch.tensor([0, 1])
    ids, info = panoptic_inference(masks, torch.tensor([0.8, 0.81]), labels, [False, False],
                                   score_threshold=0.8)
    expected = torch.zeros(4, 4, dtype=torch.long)
    expected[:, 2:] = 1
    assert torch.equal(ids, expected)
    assert info == [{"id": 1, "category": 1, "isthing": 0}]
    # nothing above the threshold: all void
    ids, info = panoptic_inference(masks, torch.tensor([0.1, 0.2]), labels, [False, False], score_threshold=0.5)
    assert info == [] and int(ids.abs().sum()) == 0
    # a kept proposal whose mask never reaches 0.5 owns nothing
    ids, info = panoptic_inference(torch.full((1, 4, 4), 0.4), torch.tensor([0.9]), torch.tensor([0]), [True],
                                   score_threshold=0.5)
    assert info == [] and int(ids.abs().sum()) == 0


def test_bad_shapes_and_labels_are_named():
    masks = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="scores and labels"):
        panoptic_inference(masks, torch.ones(3), torch.zeros(2, dtype=torch.long), [True])
    with pytest.raises(ValueError, match="is_thing"):
        panoptic_inference(torch.ones(1, 4, 4), torch.ones(1), torch.tensor([3]), [True], score_threshold=0.5)
