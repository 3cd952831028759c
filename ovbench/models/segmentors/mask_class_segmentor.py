"""Open-vocabulary *mask classification*: frozen mask generator -> proposals -> CLIP classifier.

``OVMaskClassSegmentor`` is the family FISA (Chng et al., arXiv 2409.16278) belongs
to, and its bottleneck analysis:

1. a frozen, class-agnostic :class:`~ovbench.models.heads.mask_generator.QueryMaskGenerator`
   (trained beforehand as stage 1, loaded from ``mask_generator_checkpoint``) gives ``N``
   soft masks and an objectness logit per image;
2. each mask gets a CLIP embedding -- ``'pooling'``: the dense CLIP features averaged
   with the sigmoid mask (area-resized to the patch grid) as weights; ``'tokens'``:
   one mask token per proposal whose attention is restricted to its mask
   (:func:`~ovbench.models.clip.mask_tokens.encode_with_mask_tokens`, MasQCLIP/SAN);
3. class logits = ``logit_scale * cos(mask embedding, text embedding)`` over the current
   vocabulary (a class with several prompts scores the max over them), optionally with
   SEVE's text injection in the first visual blocks and any PEFT method (``'simo'`` for
   FISA, ``'lora'``, ``'full'``, ``'hclip'``...) inside the CLIP;
4. ``p(c|q) = sigmoid(objectness_q) * softmax_c(logits_q)`` -> Mask2Former's semantic
   and panoptic inference (:mod:`.panoptic_inference`).

With ``in_vocab_head`` it is the FC-CLIP baseline (Yu et al., NeurIPS 2023): a small head
on the generator's ``mask_features`` is the trained in-vocabulary classifier, the
frozen CLIP's mask-pooled scores the out-of-vocabulary one, and ``ensemble`` combines
them geometrically.

Training: the generator runs without gradient (eval mode, always); its proposals are
matched one-to-one to the image's non-crowd ground-truth segments by the Hungarian
algorithm on mask IoU (binarised at sigmoid 0.5, at the generator's resolution); a
proposal matched with IoU >= ``train_cfg['match_iou']`` takes that segment's class as its
cross-entropy target, the others are not classified (the generator, not the classifier,
decides what is an object). Plus the PEFT method's regulariser.

Bottleneck-analysis modes (``test_cfg['extra_modes']``, :mod:`.oracle`): ``'oracle_masks'``
and ``'oracle_classes'``, each written as ``pred_sem_seg_<mode>`` / ``pred_panoptic_seg_<mode>``.
They need the ground truth in the data samples; without it (``mmseg.apis.inference_model``)
they are skipped with a warning.

Layout: :mod:`.mask_classifier` (the CLIP classifier) <- :mod:`.fcclip` (FC-CLIP's head and
ensemble) <- this module (the frozen generator, training, inference); :mod:`.oracle` and
:mod:`.mask_geometry` hold the analysis and the frames.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor

from ovbench.models.heads.mask_matching import gt_masks_from_panoptic, match_by_iou
from ovbench.models.segmentors.fcclip import FCCLIPClassifier
from ovbench.models.segmentors.mask_classifier import MASK_EMBEDDINGS, MaskScores
from ovbench.models.segmentors.mask_geometry import padded_ids, upsample
from ovbench.models.segmentors.oracle import OracleAnalysis
from ovbench.models.segmentors.panoptic_inference import panoptic_inference, semantic_inference

#: defaults of ``train_cfg`` / ``test_cfg``
TRAIN_DEFAULTS = dict(match_iou=0.5)
TEST_DEFAULTS = dict(
    mode="whole",
    score_threshold=0.0,
    overlap_threshold=0.8,
    objectness_threshold=0.0,
    mask_threshold=0.5,
    oracle_match_iou=0.5,
    extra_modes=(),
)


@MODELS.register_module()
class OVMaskClassSegmentor(FCCLIPClassifier):
    """Frozen mask generator + CLIP mask classifier over any vocabulary (see the module docstring).

    Args:
        clip: config of the CLIP wrapper (``type='OVCLIP'``; its ``peft`` decides what trains
            inside CLIP: ``'frozen'``, ``'lora'``, ``'full'``, ``'hclip'``, ``'simo'``...).
        mask_generator: config of the generator (``type='QueryMaskGenerator'`` by default).
        mask_generator_checkpoint: a stage-1 ``MaskProposalSegmentor`` checkpoint whose
            ``mask_generator.*`` weights are loaded (at construction and again in
            ``init_weights``, so the Runner's initialisation cannot overwrite them). The
            generator is always frozen: ``requires_grad=False`` and eval mode.
        mask_embedding: ``'pooling'`` or ``'tokens'`` (see the module docstring).
        mask_tokens: kwargs of ``encode_with_mask_tokens`` (``num_blocks=2, bias='hard',
            include_cls=True``) for ``mask_embedding='tokens'``.
        seve: ``None`` or kwargs of :class:`~ovbench.models.clip.seve.SEVE` (``blocks, dim,
            heads, gate_init, tokens``); built with the CLIP's width and joint dimension and
            fed the vocabulary's text embeddings before every image forward (with gradient
            when the text tower trains).
        in_vocab_head: ``None`` or kwargs of
            :class:`~ovbench.models.heads.in_vocab_head.InVocabularyHead` (``hidden_dim,
            num_layers, use_queries``): FC-CLIP's in-vocabulary classifier. It is then the only
            part that trains (the CLIP must be frozen and ``seve`` unset); the CLIP's scores are
            the out-of-vocabulary ones, used at test time through ``ensemble`` (without
            ``ensemble`` the head alone classifies).
        ensemble: ``None`` or ``dict(alpha_seen=0.4, alpha_unseen=0.8)`` (FC-CLIP's values):
            ``p = normalise(p_in^(1-a) * p_out^a)`` with ``a`` = ``alpha_seen`` for classes of the
            *training* vocabulary and ``alpha_unseen`` for the others. The training vocabulary
            is recorded by ``loss`` and kept in the state dict (``get_extra_state``); a model
            that never trained falls back to ``dataset_meta['unseen_classes']`` (every class not
            listed there is seen), and with neither every class counts as unseen. Needs
            ``in_vocab_head`` (an ensemble of an adapted CLIP with a second, frozen copy is not
            implemented).
        logit_scale: temperature of the cosine logits; ``None`` = the CLIP's own learned
            ``logit_scale.exp()`` (22.9 for the tiny CLIP, 100 for OpenAI's), fixed.
        learn_logit_scale: make the (log) scale a trainable parameter, initialised as above.
        class_names: a fixed vocabulary; normally ``None`` (from ``VocabularyHook`` or
            ``dataset_meta``).
        train_cfg: ``match_iou`` (0.5): the IoU a proposal needs with its Hungarian-matched
            ground-truth segment to be trained on that segment's class.
        test_cfg: ``mode='whole'``; ``score_threshold`` (0.0): a proposal enters the panoptic
            map when ``sigmoid(objectness) * max_c p(c|q)`` exceeds it -- Mask2Former's
            ``OBJECT_MASK_THRESHOLD`` (0.8 in Mask2Former, 0.0 in FC-CLIP's released evaluation
            configs, whose reading this default follows: open-vocabulary scores over many
            classes are low, and the overlap test already removes hidden proposals);
            ``overlap_threshold`` (0.8, Mask2Former's); ``objectness_threshold`` (0.0):
            proposals with ``sigmoid(objectness)`` below it are dropped before both semantic and
            panoptic inference; ``mask_threshold`` (0.5): binarisation of masks;
            ``oracle_match_iou`` (0.5, the paper's reading; must be in [0, 1)); ``extra_modes``: a subset of
            ``('oracle_masks', 'oracle_classes')``.
        data_preprocessor, init_cfg: as for any MMSeg segmentor.
    """

    weights_hint = "set CLIP weights with clip.pretrained and the generator's with mask_generator_checkpoint"

    def __init__(
        self,
        clip: Dict[str, Any],
        mask_generator: Dict[str, Any],
        mask_generator_checkpoint: Optional[str] = None,
        mask_embedding: str = "pooling",
        mask_tokens: Optional[Dict[str, Any]] = None,
        seve: Optional[Dict[str, Any]] = None,
        in_vocab_head: Optional[Dict[str, Any]] = None,
        ensemble: Optional[Dict[str, float]] = None,
        logit_scale: Optional[float] = None,
        learn_logit_scale: bool = False,
        class_names: Optional[Sequence[str]] = None,
        train_cfg: OptConfigType = None,
        test_cfg: OptConfigType = None,
        data_preprocessor: OptConfigType = None,
        init_cfg: OptConfigType = None,
        pretrained: Optional[str] = None,
    ) -> None:
        if mask_embedding not in MASK_EMBEDDINGS:  # before anything is built
            raise ValueError(f"OVMaskClassSegmentor.mask_embedding: expected 'pooling' or 'tokens', got {mask_embedding!r}")
        super().__init__(clip, class_names, pretrained, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.mask_generator = MODELS.build({"type": "QueryMaskGenerator", **dict(mask_generator)})
        self.mask_generator_checkpoint = mask_generator_checkpoint
        self._load_generator()
        self.mask_generator.requires_grad_(False)
        self.mask_generator.eval()
        self._init_classifier(mask_embedding, mask_tokens, seve, logit_scale, learn_logit_scale)
        self._init_in_vocabulary(in_vocab_head, ensemble, int(self.mask_generator.mask_feature_dim),
                                 int(self.mask_generator.query_dim))
        self.train_cfg, self.test_cfg = _checked_cfgs(train_cfg, test_cfg)
        self.oracle = OracleAnalysis(self.test_cfg["extra_modes"], self.test_cfg["oracle_match_iou"],
                                     self.test_cfg["mask_threshold"])
        if ("oracle_masks" in self.oracle.modes and self.in_vocab_head is not None
                and self.in_vocab_head.use_queries):
            raise ValueError("OVMaskClassSegmentor: 'oracle_masks' cannot use an in_vocab_head with use_queries=True "
                             "(ground-truth masks have no generator query)")
        self._thing_seen: Dict[str, bool] = {}  # fallback: class -> isthing, read from ground truth
        self._train_classes: Optional[Tuple[str, ...]] = None
        self._warned: set = set()

    # -------------------------------------------------------------- generator
    def _load_generator(self) -> None:
        if self.mask_generator_checkpoint:
            from ovbench.models.segmentors.mask_proposal_segmentor import load_mask_generator

            load_mask_generator(self.mask_generator, self.mask_generator_checkpoint)

    def init_weights(self) -> None:
        super().init_weights()
        self._load_generator()  # the Runner initialises after construction: reload the frozen weights

    def train(self, mode: bool = True) -> "OVMaskClassSegmentor":
        super().train(mode)
        self.mask_generator.eval()  # frozen: no dropout, no batch-statistics updates
        return self

    @torch.no_grad()
    def extract_feat(self, inputs: Tensor) -> Dict[str, Any]:
        """The frozen generator's proposals (``mask_logits``, ``objectness``, ``mask_features``, ``queries``)."""
        was = self.mask_generator.training
        self.mask_generator.eval()
        out = self.mask_generator(inputs)
        self.mask_generator.train(was)
        return out

    # -------------------------------------------------------------- things (panoptic inference)
    def is_thing(self) -> List[bool]:
        """Per class of the current vocabulary: thing (True) or stuff.

        From ``set_vocabulary(thing_classes=...)`` (``VocabularyHook`` passes each dataset's),
        else ``dataset_meta['thing_classes']``, else (with a warning) the ``isthing`` flags of the
        *training* segments seen by ``loss`` (classes never trained on count as stuff).
        """
        things = self.thing_names()
        if things is not None:
            things = set(things)
            return [c in things for c in self.class_names]
        self._warn_once("things", "OVMaskClassSegmentor: no thing_classes known (the dataset's metainfo has "
                                  "none: give its vocabulary a 'things' list, or call "
                                  "set_vocabulary(..., thing_classes=...)); using the training segments' isthing flags")
        return [self._thing_seen.get(c, False) for c in self.class_names]

    def _note_things(self, data_samples: SampleList) -> None:
        names = self.class_names
        for s in data_samples:
            pan = getattr(s, "gt_panoptic_seg", None)
            if pan is None:
                continue
            for info in pan.metainfo.get("segments_info", []):
                c = int(info["category"])
                if 0 <= c < len(names):
                    self._thing_seen[names[c]] = bool(info.get("isthing", 0))

    # -------------------------------------------------------------- training
    def task_losses(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        if not any(p.requires_grad for p in self.parameters()):
            raise RuntimeError("OVMaskClassSegmentor: nothing trains (frozen CLIP, no seve, no in_vocab_head, fixed "
                               "logit_scale): it is a zero-shot model; evaluate it without a checkpoint")
        self._train_classes = tuple(self.class_names)  # the seen classes, for the ensemble
        self._note_things(data_samples)
        gen = self.extract_feat(inputs)
        mask_logits = gen["mask_logits"]
        size = tuple(mask_logits.shape[-2:])
        input_hw = tuple(inputs.shape[-2:])
        pred_idx: List[Tensor] = []
        targets: List[Tensor] = []
        for i, sample in enumerate(data_samples):
            gt = gt_masks_from_panoptic(padded_ids(sample, input_hw), size=size)
            rows, cols, iou = match_by_iou(mask_logits[i] > 0, gt.masks)
            ok = iou >= float(self.train_cfg["match_iou"])
            pred_idx.append(rows[ok])
            targets.append(gt.categories[cols[ok]])
        logits = self.class_logits(inputs, gen, mask_logits.sigmoid(), gen.get("queries"))
        chosen = torch.cat([logits[i, idx.to(logits.device)] for i, idx in enumerate(pred_idx)])
        target = torch.cat(targets).to(logits.device)
        if target.numel() and int(target.max()) >= logits.shape[-1]:
            raise ValueError(f"ground-truth category {int(target.max())} >= vocabulary size {logits.shape[-1]}: "
                             "the dataset's segments_info and its class list disagree")
        if target.numel():
            loss = F.cross_entropy(chosen, target)
        else:  # no proposal matched: keep the graph connected
            loss = logits.sum() * 0.0
        losses = {"loss_cls": loss}
        with torch.no_grad():
            acc = (chosen.argmax(-1) == target).float().mean() * 100 if target.numel() else loss.new_zeros(())
            losses["acc_cls"] = acc
            losses["num_matched"] = loss.new_tensor(target.numel() / max(len(data_samples), 1))
        return losses

    # -------------------------------------------------------------- inference
    def _proposals(self, inputs: Tensor) -> Tuple[Dict[str, Any], MaskScores, Tensor]:
        """Generator output, the classifier's scores of its proposals, and the objectness-weighted class
        probabilities ``[B, N, C]`` (proposals under ``objectness_threshold`` zeroed)."""
        gen = self.extract_feat(inputs)
        scores = self.classify(inputs, gen, gen["mask_logits"].sigmoid(), gen.get("queries"))
        obj = gen["objectness"].sigmoid()
        keep = (obj >= float(self.test_cfg["objectness_threshold"])).to(scores.probs.dtype)
        return gen, scores, scores.probs * (obj * keep)[..., None]

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tuple[Tensor, Tensor]:
        """Tensor mode: ``(class probabilities [B, N, C], mask logits [B, N, H/4, W/4])``."""
        gen, scores, _ = self._proposals(inputs)
        return scores.probs, gen["mask_logits"]

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Per-class semantic scores at the input size, ``[B, C, H, W]``."""
        return self._semantic_scores(inputs)[0]

    def _semantic_scores(self, inputs: Tensor) -> Tuple[Tensor, Tensor, Dict[str, Any], MaskScores, Tensor]:
        gen, scores, class_probs = self._proposals(inputs)
        masks = upsample(gen["mask_logits"], inputs.shape[-2:]).sigmoid()  # [B, N, H, W]
        seg = torch.stack([semantic_inference(masks[i], class_probs[i]) for i in range(inputs.shape[0])])
        return seg, masks, gen, scores, class_probs

    def predict(self, inputs: Tensor, data_samples: SampleList = None) -> SampleList:
        """``pred_sem_seg``, ``seg_logits``, ``pred_panoptic_seg`` (and the oracle modes' maps) at the
        original image size."""
        seg, masks_in, gen, scores, class_probs = self._semantic_scores(inputs)
        no_meta = data_samples is None
        # one postprocess_result (unpad, unflip, resize) for the semantic scores and the proposals alike
        results = self.postprocess_result(torch.cat([seg, masks_in], 1), data_samples)
        n_cls, is_thing = seg.shape[1], self.is_thing()
        for i, sample in enumerate(results):
            both = sample.seg_logits.data
            masks = both[n_cls:]  # [N, Ho, Wo]
            sample.seg_logits = PixelData(data=both[:n_cls])
            pred = both[:n_cls].argmax(0, keepdim=True)
            pred[both[:n_cls].sum(0, keepdim=True) <= 0] = 255  # no proposal covers the pixel: void
            sample.pred_sem_seg = PixelData(data=pred)
            if no_meta:
                sample.set_metainfo(dict(img_shape=tuple(inputs.shape[-2:]), ori_shape=tuple(inputs.shape[-2:])))
            sample.pred_panoptic_seg = self._panoptic(masks, class_probs[i], is_thing)
            if self.oracle.modes and not no_meta:
                self._run_oracle(sample, inputs[i:i + 1], gen, i, scores.dense, masks, is_thing)
        return results

    def _run_oracle(self, sample: SegDataSample, img: Tensor, gen: Dict[str, Any], i: int,
                    dense: Optional[Tensor], masks: Tensor, is_thing: Sequence[bool]) -> None:
        if getattr(sample, "gt_panoptic_seg", None) is None:
            self._warn_once("nogt", f"OVMaskClassSegmentor: extra_modes {self.oracle.modes} need gt_panoptic_seg "
                                    "in the data samples; skipped")
            return
        gen_i = {k: (v[i:i + 1] if isinstance(v, Tensor) else v) for k, v in gen.items()}
        dense_i = None if dense is None else dense[i:i + 1]
        classify = lambda m: self.classify(img, gen_i, m, None, dense=dense_i).probs[0]  # noqa: E731
        self.oracle.run(sample, img, classify, masks, self.num_classes,
                        lambda m, p: self._panoptic(m, p, is_thing))

    def _panoptic(self, masks: Tensor, class_probs: Tensor, is_thing: Sequence[bool]) -> PixelData:
        scores, labels = class_probs.max(-1)
        ids, info = panoptic_inference(masks, scores, labels, is_thing,
                                       score_threshold=float(self.test_cfg["score_threshold"]),
                                       overlap_threshold=float(self.test_cfg["overlap_threshold"]),
                                       mask_threshold=float(self.test_cfg["mask_threshold"]))
        return PixelData(data=ids[None], metainfo=dict(segments_info=info))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=2)


def _checked_cfgs(train_cfg: OptConfigType, test_cfg: OptConfigType) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``train_cfg`` / ``test_cfg`` over their defaults; unknown keys and unsupported modes raise."""
    for name, given, known in (("train_cfg", train_cfg, TRAIN_DEFAULTS), ("test_cfg", test_cfg, TEST_DEFAULTS)):
        unknown = sorted(set(given or {}) - set(known))
        if unknown:
            hint = (" ('object_mask_threshold' is Mask2Former's name for score_threshold)"
                    if "object_mask_threshold" in unknown else "")
            raise KeyError(f"OVMaskClassSegmentor.{name}: unknown keys {unknown}; expected some of "
                           f"{sorted(known)}{hint}")
    train = {**TRAIN_DEFAULTS, **dict(train_cfg or {})}
    test = {**TEST_DEFAULTS, **dict(test_cfg or {})}
    if test["mode"] != "whole":
        raise ValueError(f"OVMaskClassSegmentor.test_cfg.mode: only 'whole' inference is implemented, got "
                         f"{test['mode']!r}")
    test["extra_modes"] = tuple(test["extra_modes"] or ())
    return train, test
