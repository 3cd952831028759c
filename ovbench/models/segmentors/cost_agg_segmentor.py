"""Open-vocabulary segmentation by cost aggregation (CAT-Seg; H-CLIP is this + the hclip PEFT).

``OVCostAggSegmentor`` subclasses MMSeg's ``EncoderDecoder`` so that whole and
sliding-window inference, ``mmseg.apis.inference_model``, ``IoUMetric`` and
mmengine's ``Runner`` work unchanged. What differs from a closed-set segmentor:

* the "backbone" is :class:`~ovbench.models.clip.OVCLIP` (both CLIP towers, with
  the PEFT method of the config), the "decode head" a
  :class:`~ovbench.models.heads.cost_aggregation.CostAggregator`, both built by
  ``EncoderDecoder.__init__`` through ``MODELS`` (the head stored as ``aggregator``);
* the number of output channels is the size of the *current vocabulary*, which
  comes from the dataset's class names (set by :class:`VocabularyHook` for
  train/val/test, or from ``dataset_meta`` restored by ``init_model``), so a
  different test vocabulary needs no code change;
* the loss is per-pixel binary cross-entropy against one-hot targets (CAT-Seg),
  plus the PEFT method's regulariser (H-CLIP's soft orthogonality), if any.

With ``aggregator=None`` it is zero-shot MaskCLIP (Zhou et al., ECCV 2022):
logits are the scaled cosine similarities of dense CLIP features and class
embeddings, with nothing to train.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor

from ovbench.models.heads.cost_aggregation import CostAggregator, ZeroShotCost
from ovbench.models.seeding import own_random_stream
from ovbench.models.segmentors.base import OVSegmentorBase


@MODELS.register_module()
class OVCostAggSegmentor(OVSegmentorBase, EncoderDecoder):
    """CLIP (+ PEFT) -> cost volume -> aggregation -> per-class logits over any vocabulary.

    Args:
        clip: config of the CLIP wrapper (``type='OVCLIP'`` by default: model name, pretrained,
            peft, templates, out_indices...).
        aggregator: kwargs of :class:`CostAggregator` (``embed_dim``/``clip_width`` are filled in
            from the CLIP model); ``None`` for zero-shot MaskCLIP (a :class:`ZeroShotCost` head).
        class_names: a fixed vocabulary; normally left ``None`` and taken from the dataset.
        zero_shot_logit_scale: temperature of the zero-shot cost (CLIP's own is ~100).
        alignment: record image-text alignment statistics in each predicted sample (for
            ``AlignmentMetric``); costs one extra CLIP forward per test image.
        own_head_stream: draw the head's initial weights from a random stream of its own, seeded by the
            trial's seed, so that every PEFT method and hyperparameter of a study starts from the same
            head for the same seed (:mod:`ovbench.models.seeding`). ``False``: the head draws from where
            the CLIP side's initialisation left the shared stream (benchmark v4 and earlier).
        train_classes: how many classes the head scores per training batch: every class present in
            the batch, plus classes drawn at random from the rest of the training vocabulary up to this
            number (:func:`sample_training_classes`). The head's cost, and a trained text tower's, is
            per class. ``None``: the whole training vocabulary in every batch (benchmark v1-v4).
        train_negatives: how ``train_classes`` picks the absent classes: ``'random'`` (uniformly), or
            ``'similar'``: those whose text embeddings are closest to a class present in the batch (the
            negatives the head can most easily confuse; hard-negative mining, Shrivastava et al., CVPR 2016,
            with CLIP's text space as the measure of hardness).
    """

    def __init__(
        self,
        clip: Dict[str, Any],
        aggregator: Optional[Dict[str, Any]] = None,
        class_names: Optional[Sequence[str]] = None,
        zero_shot_logit_scale: float = 100.0,
        alignment: bool = False,
        own_head_stream: bool = False,
        train_classes: Optional[int] = None,
        train_negatives: str = "random",
        train_cfg: OptConfigType = None,
        test_cfg: OptConfigType = None,
        data_preprocessor: OptConfigType = None,
        init_cfg: OptConfigType = None,
        pretrained: Optional[str] = None,
    ) -> None:
        self._own_head_stream = bool(own_head_stream)  # read by _init_decode_head, inside super().__init__
        head = (dict(type="ZeroShotCost", logit_scale=zero_shot_logit_scale) if aggregator is None
                else {"type": "CostAggregator", **dict(aggregator)})
        super().__init__(clip, class_names, pretrained, decode_head=head, train_cfg=train_cfg or {},
                         test_cfg=ConfigDict(test_cfg or dict(mode="whole")),  # EncoderDecoder reads .mode
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.zero_shot_logit_scale = zero_shot_logit_scale
        self.alignment = alignment
        if train_classes is not None and (isinstance(train_classes, bool) or not isinstance(train_classes, int)
                                          or train_classes < 1):
            raise ValueError(f"OVCostAggSegmentor: train_classes must be a positive integer or None, "
                             f"got {train_classes!r}")
        self.train_classes = train_classes
        if train_negatives not in NEGATIVE_SAMPLING:
            raise ValueError(f"OVCostAggSegmentor: train_negatives must be one of {NEGATIVE_SAMPLING}, "
                             f"got {train_negatives!r}")
        self.train_negatives = train_negatives

    def _init_decode_head(self, decode_head: Dict[str, Any]) -> None:
        """EncoderDecoder's hook: the head is built through MODELS with the CLIP's widths filled in. It is
        stored as ``aggregator`` (the parameter names of existing checkpoints); the vocabulary, not the
        head, decides ``num_classes``."""
        if decode_head["type"] == "CostAggregator":
            decode_head = dict(decode_head, embed_dim=self.backbone.embed_dim,
                               clip_width=int(self.backbone.clip.visual.transformer.width))
        with own_random_stream(self._own_head_stream):
            self.aggregator = MODELS.build(decode_head)

    @property
    def decode_head(self):
        return self.aggregator

    @property
    def zero_shot(self) -> bool:
        return isinstance(self.aggregator, ZeroShotCost)

    # -------------------------------------------------------------- forward
    def extract_feat(self, inputs: Tensor) -> Dict[str, Any]:
        return self.backbone(inputs, self.prompt_names()[0])

    def _logits(self, inputs: Tensor, classes: Optional[Tensor] = None) -> Tensor:
        """Per-class logits on the patch grid's output stride; ``classes``: only these vocabulary
        entries, in that order (a training batch's sample), else all."""
        names, groups = self.prompt_names()
        rows = None
        if classes is not None:
            rows, groups = self.select_classes(groups, classes.tolist())
        feats = self.backbone(inputs, names, rows)
        if self._keep_feats:  # predict() with the alignment diagnostic reuses this pass
            self._kept_feats = (inputs, feats)
        # Deepest intermediate layer feeds the first (coarsest) decoder stage.
        logits = self.aggregator(feats["dense"], feats["text"], feats["features"][::-1])
        return self.merge_prompts(logits, groups)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        logits = self._logits(inputs)
        return F.interpolate(logits, size=inputs.shape[2:], mode="bilinear", align_corners=False)

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        return self._logits(inputs)

    _keep_feats = False
    _kept_feats = None

    def predict(self, inputs: Tensor, data_samples: SampleList = None) -> SampleList:
        """MMSeg's predict; with ``alignment`` on, the diagnostic reads the same image-tower pass.

        Whole-image inference encodes ``inputs`` exactly once, and that pass is kept for the
        alignment statistics; sliding-window inference saw crops, so it takes one more pass.
        """
        want = self.alignment and data_samples is not None
        self._keep_feats, self._kept_feats = want, None
        try:
            results = super().predict(inputs, data_samples)
        finally:
            kept, self._keep_feats, self._kept_feats = self._kept_feats, False, None
        if want:
            with torch.no_grad():
                feats = kept[1] if kept is not None and kept[0] is inputs else self.extract_feat(inputs)
                cost = CostAggregator.cost_volume(feats["dense"], feats["text"])
                cost = self.merge_prompts(cost, self.prompt_names()[1])
            for i, sample in enumerate(results):
                gt = _gt_on_grid(sample, inputs.shape[2:], cost.shape[2:])
                sample.alignment = alignment_stats(cost[i], gt)
        return results

    def task_losses(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        if self.zero_shot:
            raise RuntimeError("OVCostAggSegmentor: zero-shot mode (aggregator=None) has nothing to train")
        target = torch.stack([s.gt_sem_seg.data[0] for s in data_samples]).long()
        classes = sample_training_classes(target, self.num_classes, self.train_classes,
                                          similarity=self._class_similarity())
        logits = F.interpolate(self._logits(inputs, classes), size=inputs.shape[2:], mode="bilinear",
                               align_corners=False)
        if classes is not None:
            target = relabel(target, classes, self.num_classes)
        losses = {"loss_bce": per_pixel_bce(logits, target, ignore_index=255)}
        with torch.no_grad():
            valid = target != 255
            acc = (logits.argmax(1) == target)[valid].float().mean() * 100 if valid.any() else logits.new_zeros(())
        losses["acc_seg"] = acc
        return losses


    def _class_similarity(self) -> Optional[Tensor]:
        """``[C, C]`` cosine similarity of the classes' text embeddings (no gradient; a frozen text tower
        serves them from its cache), for ``train_negatives='similar'``; else None. It runs before this
        step's ``begin_forward``, so a PEFT method with a per-forward pre-computation (H-CLIP's DCRC) ranks
        the classes with the previous step's: a choice of negatives, not a trained quantity."""
        if self.train_negatives != "similar" or self.train_classes is None:
            return None
        names, groups = self.prompt_names()
        with torch.no_grad():
            text = self.backbone.encode_text(names)
            per_class = F.normalize(torch.stack([text[g].mean(0) for g in groups]), dim=-1)
            return per_class @ per_class.t()


#: how :func:`sample_training_classes` picks absent classes
NEGATIVE_SAMPLING = ("random", "similar")


def sample_training_classes(target: Tensor, num_classes: int, budget: Optional[int],
                            ignore_index: int = 255, similarity: Optional[Tensor] = None) -> Optional[Tensor]:
    """The classes a training batch is scored on: all present in ``target``, plus absent ones.

    Follows the federated loss of Zhou et al. ("Probabilistic two-stage detection", 2021; used by
    Detic, ECCV 2022), which scores each batch on its positives and a random sample of negatives
    instead of the whole vocabulary; here the negatives are drawn uniformly from torch's stream, or,
    given ``similarity`` (``[C, C]``), are the absent classes most similar to any present one. A
    class present is never dropped, so a batch with more than ``budget`` classes keeps them all.
    Returns the sorted class indices, or ``None`` when ``budget`` is ``None`` or covers the vocabulary.
    """
    if budget is None or budget >= num_classes:
        return None
    labels = target[target != ignore_index]
    present = torch.zeros(num_classes, dtype=torch.bool, device=target.device)
    if labels.numel():
        check_labels(labels, num_classes)
        present[labels.unique()] = True
    absent = (~present).nonzero().flatten()
    wanted = max(0, budget - int(present.sum()))
    if similarity is not None and present.any():
        closeness = similarity[absent][:, present].max(1).values
        drawn = absent[closeness.argsort(descending=True, stable=True)[:wanted]]
    else:
        drawn = absent[torch.randperm(absent.numel())[:wanted].to(absent.device)]
    present[drawn] = True
    return present.nonzero().flatten()


def relabel(target: Tensor, classes: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Labels of the whole vocabulary -> their position among ``classes`` (which hold every label
    present); ``ignore_index`` stays."""
    lookup = torch.full((num_classes,), ignore_index, dtype=target.dtype, device=target.device)
    lookup[classes] = torch.arange(classes.numel(), dtype=target.dtype, device=target.device)
    valid = target != ignore_index
    return torch.where(valid, lookup[torch.where(valid, target, torch.zeros_like(target))], target)


def check_labels(labels: Tensor, num_classes: int) -> None:
    """Refuse label ids the vocabulary does not have (the dataset's labels and class list disagree)."""
    top = int(labels.max())
    if top >= num_classes:
        raise ValueError(
            f"label id {top} >= vocabulary size {num_classes}: the dataset's labels and "
            "its class list disagree"
        )


def per_pixel_bce(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Mean binary cross-entropy of ``[B, C, H, W]`` logits against one-hot ``[B, H, W]`` labels."""
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    safe = torch.where(valid, target, torch.zeros_like(target))
    check_labels(safe, logits.shape[1])
    one_hot = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none").mean(1)
    return loss[valid].mean()


def _gt_on_grid(sample: Any, input_hw: Sequence[int], grid_hw: Sequence[int]) -> Tensor:
    """Ground truth mapped onto the patch grid: resized to the image as fed, padded, nearest-downsampled."""
    gt = sample.gt_sem_seg.data.float()[None]
    img_h, img_w = sample.metainfo.get("img_shape", tuple(input_hw))[:2]
    gt = F.interpolate(gt, size=(int(img_h), int(img_w)), mode="nearest")
    gt = F.pad(gt, (0, int(input_hw[1]) - int(img_w), 0, int(input_hw[0]) - int(img_h)), value=255)
    return F.interpolate(gt, size=tuple(grid_hw), mode="nearest")[0, 0].long()


def alignment_stats(cost: Tensor, gt: Tensor, ignore_index: int = 255) -> Dict[str, Any]:
    """Per-class sums over pixels of that class: cosine to the true class, and its margin over
    the best wrong class; with pixel counts. ``cost``: ``[C, h, w]`` cosines; ``gt``: ``[h, w]``."""
    num_classes = cost.shape[0]
    valid = (gt != ignore_index) & (gt < num_classes)
    sims = cost.flatten(1)[:, valid.flatten()].double()  # [C, N]
    labels = gt[valid]
    idx = torch.arange(labels.numel(), device=labels.device)
    true = sims[labels, idx]
    others = sims.clone()
    others[labels, idx] = float("-inf")
    margin = true - others.max(0).values if num_classes > 1 else torch.zeros_like(true)
    return dict(
        sum_cos=torch.bincount(labels, weights=true, minlength=num_classes).cpu().numpy(),
        sum_margin=torch.bincount(labels, weights=margin, minlength=num_classes).cpu().numpy(),
        count=torch.bincount(labels, minlength=num_classes).double().cpu().numpy(),
    )
