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

Bottleneck-analysis modes (``test_cfg['extra_modes']``), each written as
``pred_sem_seg_<mode>`` / ``pred_panoptic_seg_<mode>`` (docs/fisa.md):

* ``'oracle_masks'``: the sample's ground-truth segments (every non-void one, crowd
  included) replace the proposals, objectness 1, classified by the model as usual;
* ``'oracle_classes'``: the binarised proposals are matched to the ground-truth segments
  (Hungarian on IoU, pairs with IoU > ``oracle_match_iou``, default 0.5: FISA's reading,
  "Hungarian or IoU > 0.5", which coincide there since IoU > 0.5 matches are unique); a
  matched proposal gets its segment's class with probability 1, an unmatched one is void.
  ``oracle_match_iou=0.0`` (before issue 13) also hands the true class to proposals that
  barely overlap their segment.

Both need the ground truth in the data samples; without it (``mmseg.apis.inference_model``)
they are skipped with a warning.
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor, nn

from ovbench.models.clip import OVCLIP
from ovbench.models.heads.in_vocab_head import mask_pool
from ovbench.models.heads.mask_matching import gt_masks_from_panoptic, match_by_iou
from ovbench.models.segmentors.panoptic_inference import panoptic_inference, semantic_inference
from ovbench.models.segmentors.vocabulary import OpenVocabularyMixin
from ovbench.peft import get_peft_method, regularization_loss

EXTRA_MODES = ("oracle_masks", "oracle_classes")

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
class OVMaskClassSegmentor(OpenVocabularyMixin, BaseSegmentor):
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
        # `pretrained` exists because mmseg.apis.init_model sets it to None.
        if pretrained is not None:
            raise ValueError("OVMaskClassSegmentor: set CLIP weights with clip.pretrained and the generator's "
                             "with mask_generator_checkpoint, not model.pretrained")
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if mask_embedding not in ("pooling", "tokens"):
            raise ValueError(f"OVMaskClassSegmentor.mask_embedding: expected 'pooling' or 'tokens', got {mask_embedding!r}")
        clip = dict(clip)
        clip.setdefault("type", "OVCLIP")
        self.backbone: OVCLIP = MODELS.build(clip)

        gen = dict(mask_generator)
        gen.setdefault("type", "QueryMaskGenerator")
        self.mask_generator = MODELS.build(gen)
        self.mask_generator_checkpoint = mask_generator_checkpoint
        self._load_generator()
        self.mask_generator.requires_grad_(False)
        self.mask_generator.eval()

        self.mask_embedding = mask_embedding
        self.mask_tokens_cfg = dict(num_blocks=2, bias="hard", include_cls=True)
        self.mask_tokens_cfg.update(mask_tokens or {})

        width = int(self.backbone.clip.visual.transformer.width)
        embed_dim = self.backbone.embed_dim
        self.seve = None
        if seve is not None:
            from ovbench.models.clip.seve import SEVE

            self.seve = SEVE(width=width, text_dim=embed_dim, **dict(seve))
            self.seve.attach(self.backbone)

        self.in_vocab_head = None
        if in_vocab_head is not None:
            from ovbench.models.heads.in_vocab_head import InVocabularyHead

            if self.seve is not None or any(p.requires_grad for p in self.backbone.parameters()):
                raise ValueError(
                    "OVMaskClassSegmentor.in_vocab_head (FC-CLIP): the CLIP is the frozen out-of-vocabulary "
                    "classifier; use clip.peft=dict(type='frozen') and seve=None with it")
            head = dict(in_vocab_head)
            head.setdefault("query_dim", int(self.mask_generator.query_dim))
            self.in_vocab_head = InVocabularyHead(in_dim=int(self.mask_generator.mask_feature_dim),
                                                  embed_dim=embed_dim, **head)
        if ensemble is not None:
            if self.in_vocab_head is None:
                raise NotImplementedError(
                    "OVMaskClassSegmentor.ensemble needs in_vocab_head (FC-CLIP: head = in-vocabulary, frozen CLIP "
                    "= out-of-vocabulary); an ensemble of an adapted CLIP with a frozen copy is not implemented")
            unknown = set(ensemble) - {"alpha_seen", "alpha_unseen"}
            if unknown:
                raise KeyError(f"OVMaskClassSegmentor.ensemble: unknown keys {sorted(unknown)}; expected "
                               "'alpha_seen', 'alpha_unseen'")
            ensemble = {**dict(alpha_seen=0.4, alpha_unseen=0.8), **dict(ensemble)}
        self.ensemble = ensemble

        scale = float(self.backbone.clip.logit_scale.exp()) if logit_scale is None else float(logit_scale)
        if scale <= 0:
            raise ValueError(f"OVMaskClassSegmentor.logit_scale: expected > 0, got {scale}")
        log_scale = torch.tensor(float(torch.tensor(scale).log()))
        if learn_logit_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale, persistent=False)

        for name, given, known in (("train_cfg", train_cfg, TRAIN_DEFAULTS), ("test_cfg", test_cfg, TEST_DEFAULTS)):
            unknown = sorted(set(given or {}) - set(known))
            if unknown:
                hint = (" ('object_mask_threshold' is Mask2Former's name for score_threshold)"
                        if "object_mask_threshold" in unknown else "")
                raise KeyError(f"OVMaskClassSegmentor.{name}: unknown keys {unknown}; expected some of "
                               f"{sorted(known)}{hint}")
        self.train_cfg = {**TRAIN_DEFAULTS, **dict(train_cfg or {})}
        self.test_cfg = {**TEST_DEFAULTS, **dict(test_cfg or {})}
        if self.test_cfg["mode"] != "whole":
            raise ValueError(f"OVMaskClassSegmentor.test_cfg.mode: only 'whole' inference is implemented, got "
                             f"{self.test_cfg['mode']!r}")
        modes = tuple(self.test_cfg["extra_modes"] or ())
        bad = [m for m in modes if m not in EXTRA_MODES]
        if bad:
            raise ValueError(f"OVMaskClassSegmentor.test_cfg.extra_modes: unknown {bad}; expected some of {EXTRA_MODES}")
        if "oracle_masks" in modes and self.in_vocab_head is not None and self.in_vocab_head.use_queries:
            raise ValueError("OVMaskClassSegmentor: 'oracle_masks' cannot use an in_vocab_head with use_queries=True "
                             "(ground-truth masks have no generator query)")
        self.test_cfg["extra_modes"] = modes
        if not 0.0 <= float(self.test_cfg["oracle_match_iou"]) < 1.0:
            raise ValueError("OVMaskClassSegmentor.test_cfg.oracle_match_iou: expected 0 <= IoU < 1 (0.5: FISA's "
                             f"'IoU > 0.5' reading), got {self.test_cfg['oracle_match_iou']!r}")
        self.align_corners = False
        self._class_names = tuple(class_names) if class_names else None
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

    # -------------------------------------------------------------- vocabulary (OpenVocabularyMixin)
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

    # -------------------------------------------------------------- seen classes (ensemble)
    def get_extra_state(self) -> Dict[str, Any]:
        """The training vocabulary travels with the weights (the ensemble's seen/unseen split)."""
        return {"train_classes": list(self._train_classes) if self._train_classes is not None else None}

    def set_extra_state(self, state: Any) -> None:
        classes = (state or {}).get("train_classes") if isinstance(state, dict) else None
        self._train_classes = tuple(classes) if classes is not None else None

    def seen_mask(self) -> Tensor:
        """``[C]`` bool: class of the training vocabulary (recorded), else not in ``unseen_classes``."""
        names = self.class_names
        if self._train_classes is not None:
            seen = set(self._train_classes)
            return torch.tensor([c in seen for c in names])
        meta = getattr(self, "dataset_meta", None) or {}
        if meta.get("unseen_classes") is not None:
            unseen = set(meta["unseen_classes"])
            return torch.tensor([c not in unseen for c in names])
        return torch.zeros(len(names), dtype=torch.bool)

    @staticmethod
    def ensemble_probs(p_in: Tensor, p_out: Tensor, alpha: Tensor, eps: float = 1e-8) -> Tensor:
        """FC-CLIP's geometric ensemble ``p_in^(1-a) * p_out^a`` per class, renormalised over classes.

        ``p_in, p_out``: ``[..., C]`` probabilities; ``alpha``: ``[C]``.
        """
        alpha = alpha.to(p_in)
        log_p = (1 - alpha) * p_in.clamp_min(eps).log() + alpha * p_out.clamp_min(eps).log()
        return log_p.softmax(-1)

    # -------------------------------------------------------------- classification
    @property
    def logit_scale(self) -> Tensor:
        return self.log_logit_scale.exp()

    def _begin(self) -> None:
        method = get_peft_method(self.backbone.clip)
        if method is not None:
            method.begin_forward()

    def _text(self) -> Tuple[Tensor, List[slice]]:
        names, groups = self.prompt_names()
        return self.backbone.encode_text(names), groups

    def _clip_embed(self, inputs: Tensor, text: Tensor, masks: Tensor,
                    dense: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``[B, N, D]`` mask embeddings of ``masks [B, N, H', W']`` (aligned with ``inputs``), and the
        dense features (reusable for other masks in pooling mode)."""
        if self.seve is not None:
            self.seve.set_text(text)
        try:
            if self.mask_embedding == "tokens":
                from ovbench.models.clip.mask_tokens import encode_with_mask_tokens

                out = encode_with_mask_tokens(self.backbone, inputs, masks, **self.mask_tokens_cfg)
                return out["mask_emb"], out["dense"]
            if dense is None:
                dense = self.backbone.encode_image(inputs)["dense"]
            return F.normalize(mask_pool(dense, masks), dim=-1), dense
        finally:
            if self.seve is not None:
                self.seve.set_text(None)  # no stale graph between steps

    def _cosine_logits(self, emb: Tensor, text: Tensor, groups: List[slice]) -> Tensor:
        cos = torch.einsum("bnd,pd->bnp", emb, text.to(emb.dtype))
        return self.merge_prompts(cos * self.logit_scale, groups, dim=-1)

    def classify(self, inputs: Tensor, gen: Dict[str, Any], masks: Tensor, queries: Optional[Tensor] = None,
                 need: str = "probs", dense: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Classify ``masks [B, N, H', W']`` (aligned with ``inputs``) over the current vocabulary.

        ``need='logits'`` (training): ``{'logits'}`` of the trained classifier (the in-vocabulary head
        when set, else the CLIP). ``need='probs'``: ``{'probs' [B, N, C], 'dense'}`` -- the head's, the
        CLIP's, or their ensemble.
        """
        self._begin()
        text, groups = self._text()
        if self.in_vocab_head is not None:
            emb_in = self.in_vocab_head(gen["mask_features"], masks, queries)
            logits_in = self._cosine_logits(emb_in, text, groups)
            if need == "logits":
                return {"logits": logits_in}
            p_in = logits_in.softmax(-1)
            if self.ensemble is None:
                return {"probs": p_in, "dense": dense}
            emb_out, dense = self._clip_embed(inputs, text, masks, dense)
            p_out = self._cosine_logits(emb_out, text, groups).softmax(-1)
            seen = self.seen_mask().to(p_in.device)
            alpha = torch.where(seen, torch.full_like(p_in[0, 0], self.ensemble["alpha_seen"]),
                                torch.full_like(p_in[0, 0], self.ensemble["alpha_unseen"]))
            return {"probs": self.ensemble_probs(p_in, p_out, alpha), "dense": dense}
        emb, dense = self._clip_embed(inputs, text, masks, dense)
        logits = self._cosine_logits(emb, text, groups)
        if need == "logits":
            return {"logits": logits}
        return {"probs": logits.softmax(-1), "dense": dense}

    # -------------------------------------------------------------- training
    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
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
            gt = gt_masks_from_panoptic(_padded_ids(sample, input_hw), size=size)
            rows, cols, iou = match_by_iou(mask_logits[i] > 0, gt.masks)
            ok = iou >= float(self.train_cfg["match_iou"])
            pred_idx.append(rows[ok])
            targets.append(gt.categories[cols[ok]])
        logits = self.classify(inputs, gen, mask_logits.sigmoid(), gen.get("queries"), need="logits")["logits"]
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
        reg = regularization_loss(self.backbone.clip)
        if reg is not None:
            losses["loss_peft_reg"] = reg
        with torch.no_grad():
            acc = (chosen.argmax(-1) == target).float().mean() * 100 if target.numel() else loss.new_zeros(())
            losses["acc_cls"] = acc
            losses["num_matched"] = loss.new_tensor(target.numel() / max(len(data_samples), 1))
        return losses

    # -------------------------------------------------------------- inference
    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tuple[Tensor, Tensor]:
        """Tensor mode: ``(class probabilities [B, N, C], mask logits [B, N, H/4, W/4])``."""
        gen = self.extract_feat(inputs)
        probs = self.classify(inputs, gen, gen["mask_logits"].sigmoid(), gen.get("queries"))["probs"]
        return probs, gen["mask_logits"]

    def _proposal_scores(self, gen: Dict[str, Any], probs: Tensor) -> Tuple[Tensor, Tensor]:
        """Objectness-weighted class probabilities ``[B, N, C]`` (proposals under
        ``objectness_threshold`` zeroed) and the objectness ``[B, N]``."""
        obj = gen["objectness"].sigmoid()
        keep = (obj >= float(self.test_cfg["objectness_threshold"])).to(probs.dtype)
        return probs * (obj * keep)[..., None], obj

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Per-class semantic scores at the input size, ``[B, C, H, W]``."""
        gen = self.extract_feat(inputs)
        probs = self.classify(inputs, gen, gen["mask_logits"].sigmoid(), gen.get("queries"))["probs"]
        class_probs, _ = self._proposal_scores(gen, probs)
        masks = _upsample(gen["mask_logits"], inputs.shape[-2:]).sigmoid()
        return torch.stack([semantic_inference(masks[i], class_probs[i]) for i in range(inputs.shape[0])])

    def predict(self, inputs: Tensor, data_samples: SampleList = None) -> SampleList:
        """``pred_sem_seg``, ``seg_logits``, ``pred_panoptic_seg`` (and the extra modes' maps) at the
        original image size."""
        gen = self.extract_feat(inputs)
        soft = gen["mask_logits"].sigmoid()
        cls = self.classify(inputs, gen, soft, gen.get("queries"))
        class_probs, _ = self._proposal_scores(gen, cls["probs"])
        masks_in = _upsample(gen["mask_logits"], inputs.shape[-2:]).sigmoid()  # [B, N, H, W]
        seg = torch.stack([semantic_inference(masks_in[i], class_probs[i]) for i in range(inputs.shape[0])])
        no_meta = data_samples is None
        results = self.postprocess_result(seg, data_samples)
        if no_meta:
            for r in results:
                r.set_metainfo(dict(img_shape=tuple(inputs.shape[-2:]), ori_shape=tuple(inputs.shape[-2:])))
        is_thing = self.is_thing()
        for i, sample in enumerate(results):
            total = sample.seg_logits.data.sum(0, keepdim=True)
            sample.pred_sem_seg.data[total <= 0] = 255  # no proposal covers the pixel: void
            masks = self._restore(masks_in[i:i + 1], sample.metainfo)[0]  # [N, Ho, Wo]
            sample.pred_panoptic_seg = self._panoptic(masks, class_probs[i], is_thing)
        modes = self.test_cfg["extra_modes"]
        if modes and not no_meta:
            for i, sample in enumerate(results):
                if getattr(sample, "gt_panoptic_seg", None) is None:
                    self._warn_once("nogt", f"OVMaskClassSegmentor: extra_modes {modes} need gt_panoptic_seg in the "
                                            "data samples; skipped")
                    continue
                for mode in modes:
                    if mode == "oracle_masks":
                        sem, pan = self._oracle_masks(inputs[i:i + 1], gen, i, sample, cls.get("dense"), is_thing)
                    else:
                        sem, pan = self._oracle_classes(masks_in[i:i + 1], sample, is_thing)
                    sample.set_field(sem, f"pred_sem_seg_{mode}")
                    sample.set_field(pan, f"pred_panoptic_seg_{mode}")
        return results

    def _panoptic(self, masks: Tensor, class_probs: Tensor, is_thing: Sequence[bool]) -> PixelData:
        scores, labels = class_probs.max(-1)
        ids, info = panoptic_inference(masks, scores, labels, is_thing,
                                       score_threshold=float(self.test_cfg["score_threshold"]),
                                       overlap_threshold=float(self.test_cfg["overlap_threshold"]),
                                       mask_threshold=float(self.test_cfg["mask_threshold"]))
        return PixelData(data=ids[None], metainfo=dict(segments_info=info))

    @staticmethod
    def _semantic(masks: Tensor, class_probs: Tensor) -> PixelData:
        scores = semantic_inference(masks, class_probs)
        pred = scores.argmax(0, keepdim=True)
        pred[scores.sum(0, keepdim=True) <= 0] = 255
        return PixelData(data=pred)

    def _oracle_masks(self, img: Tensor, gen: Dict[str, Any], i: int, sample: SegDataSample,
                      dense: Optional[Tensor], is_thing: Sequence[bool]) -> Tuple[PixelData, PixelData]:
        """Ground-truth segments as the proposals (objectness 1), classified by the model."""
        meta = sample.metainfo
        input_hw = tuple(img.shape[-2:])
        gt_in = gt_masks_from_panoptic(_padded_ids(sample, input_hw, meta), include_crowd=True)
        gt_out = gt_masks_from_panoptic(sample, size=_ori_shape(meta, input_hw), include_crowd=True)
        if gt_in.masks.shape[0] == 0:
            ids = torch.zeros((1, *gt_out.masks.shape[-2:]), dtype=torch.long, device=img.device)
            return PixelData(data=torch.full_like(ids, 255)), PixelData(data=ids, metainfo=dict(segments_info=[]))
        # the same segments in both frames (a segment may vanish in one resize): keep the common ids
        common = [int(s) for s in gt_in.ids.tolist() if s in set(gt_out.ids.tolist())]
        pick_in = torch.tensor([gt_in.ids.tolist().index(s) for s in common], dtype=torch.long)
        pick_out = torch.tensor([gt_out.ids.tolist().index(s) for s in common], dtype=torch.long)
        masks_in = gt_in.masks[pick_in].to(img.device, torch.float32)[None]
        gen_i = {k: (v[i:i + 1] if isinstance(v, Tensor) else v) for k, v in gen.items()}
        dense_i = None if dense is None else dense[i:i + 1]
        probs = self.classify(img, gen_i, masks_in, None, dense=dense_i)["probs"][0]
        masks_out = gt_out.masks[pick_out].to(img.device, torch.float32)
        return self._semantic(masks_out, probs), self._panoptic(masks_out, probs, is_thing)

    def _oracle_classes(self, masks_in: Tensor, sample: SegDataSample,
                        is_thing: Sequence[bool]) -> Tuple[PixelData, PixelData]:
        """Binarised proposals matched to the ground truth, each matched one given its true class."""
        meta = sample.metainfo
        thr = float(self.test_cfg["mask_threshold"])
        binary = (self._restore(masks_in, meta)[0] >= thr)
        gt = gt_masks_from_panoptic(sample, size=binary.shape[-2:], include_crowd=True)
        rows, cols, _ = match_by_iou(binary, gt.masks.to(binary.device), min_iou=float(self.test_cfg["oracle_match_iou"]))
        probs = torch.zeros(binary.shape[0], self.num_classes, device=binary.device)
        probs[rows.to(binary.device), gt.categories[cols].to(binary.device)] = 1.0
        masks = binary.float()
        return self._semantic(masks, probs), self._panoptic(masks, probs, is_thing)

    def _restore(self, x: Tensor, meta: Dict[str, Any]) -> Tensor:
        """``[1, K, H, W]`` maps at the (padded) input size -> the original image size, as
        ``BaseSegmentor.postprocess_result`` does: remove padding, undo a flip, resize."""
        h, w = x.shape[-2:]
        pad = meta.get("img_padding_size", meta.get("padding_size", [0] * 4))
        left, right, top, bottom = (int(v) for v in pad)
        x = x[..., top:h - bottom, left:w - right]
        if meta.get("flip", False):
            x = x.flip(dims=(3,) if meta.get("flip_direction", "horizontal") == "horizontal" else (2,))
        return F.interpolate(x, size=_ori_shape(meta, (h, w)), mode="bilinear", align_corners=self.align_corners)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=2)


# ------------------------------------------------------------------ helpers
def _upsample(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _ori_shape(meta: Dict[str, Any], default: Sequence[int]) -> Tuple[int, int]:
    h, w = meta.get("ori_shape", default)[:2]
    return int(h), int(w)


def _padded_ids(sample: SegDataSample, input_hw: Sequence[int], meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The sample's segment-id map in the frame of the (padded) network input, as the dict form
    ``gt_masks_from_panoptic`` reads: resized (nearest) to ``img_shape`` when it is at another size
    (test pipelines load the ground truth after ``Resize``), then padded with void as the data
    preprocessor padded the image."""
    meta = sample.metainfo if meta is None else meta
    pan = getattr(sample, "gt_panoptic_seg", None)
    if pan is None:
        raise KeyError("OVMaskClassSegmentor: the data sample has no gt_panoptic_seg (load the data with "
                       "LoadPanopticAnnotations + PackPanopticInputs, docs/fisa.md)")
    ids = pan.data
    ids = ids[0] if ids.dim() == 3 else ids
    img_h, img_w = (int(v) for v in meta.get("img_shape", ids.shape)[:2])
    if tuple(ids.shape) != (img_h, img_w):
        ids = F.interpolate(ids[None, None].float(), size=(img_h, img_w), mode="nearest")[0, 0].long()
    left, right, top, bottom = (int(v) for v in meta.get("padding_size", [0] * 4))
    if not any((left, right, top, bottom)):  # training batches: stack_batch pads bottom/right
        bottom, right = int(input_hw[0]) - img_h, int(input_hw[1]) - img_w
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"OVMaskClassSegmentor: ground truth {(img_h, img_w)} larger than the input {tuple(input_hw)}")
    ids = F.pad(ids, (left, right, top, bottom), value=0)
    return {"gt_panoptic_seg": {"data": ids[None], "segments_info": pan.metainfo.get("segments_info", [])}}
