"""Stage 1 of FISA: train the class-agnostic mask generator on its own.

``MaskProposalSegmentor`` wraps a :class:`~ovbench.models.heads.mask_generator.QueryMaskGenerator`
(as ``self.mask_generator``) so that mmengine's ``Runner`` can train and test it like any
MMSeg segmentor:

* ``loss``: every non-crowd segment of ``gt_panoptic_seg`` is a target, whatever its class
  (class-agnostic; the training set labels only the seen classes, so unseen objects are
  void there), via Hungarian matching + objectness/BCE/dice losses
  (:class:`~ovbench.models.heads.mask_matching.MaskProposalCriterion`, after Mask2Former);
* ``predict``: writes ``pred_proposals`` (``InstanceData`` with ``masks [N, H, W]`` bool and
  ``scores [N]`` = sigmoid(objectness), all N queries, at the original image size) and
  ``pred_agnostic_seg`` (``PixelData([1, H, W])``: a class-agnostic panoptic map from
  Mask2Former's panoptic inference, segment ``k`` = query ``k - 1``, 0 = void). There are no
  classes, so no ``pred_sem_seg``/``pred_panoptic_seg``:
  :class:`~ovbench.evaluation.proposal_recall.ProposalRecallMetric` scores these fields.

:func:`load_mask_generator` puts the trained weights into another model's generator (the FISA
classifier freezes it). The name ``'synth'`` stands for the generator shipped in
``ovbench/assets`` (trained on the embedded benchmark, SHA-256 checked), so the classifier
configs run without a stage-1 run; :func:`export_mask_generator` writes such a file.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData, PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType, SampleList
from torch import Tensor, nn

from ovbench.models.clip.tiny import ASSETS, expected_sha256, sha256_of, verify_checkpoint
from ovbench.models.heads.mask_generator import QueryMaskGenerator
from ovbench.models.heads.mask_matching import MaskProposalCriterion, gt_masks_from_panoptic


@MODELS.register_module()
class MaskProposalSegmentor(BaseSegmentor):
    """Class-agnostic mask proposals: a :class:`QueryMaskGenerator` + its set-prediction losses.

    Args:
        mask_generator: config of the generator (``type='QueryMaskGenerator'`` by default).
        criterion: kwargs of :class:`MaskProposalCriterion` (matching costs, loss weights,
            ``no_object_weight``).
        test_cfg: ``score_thr`` (objectness above which a query may enter the class-agnostic
            panoptic map, default 0.5), ``overlap_thr`` (a query keeps its segment only if at
            least this fraction of its own mask survives the pixel-wise argmax, Mask2Former's
            0.8), ``mask_thr`` (sigmoid level of a binary mask, 0.5).
    """

    def __init__(
        self,
        mask_generator: Dict[str, Any],
        criterion: Optional[Dict[str, Any]] = None,
        train_cfg: OptConfigType = None,
        test_cfg: OptConfigType = None,
        data_preprocessor: OptConfigType = None,
        init_cfg: OptConfigType = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        cfg = dict(mask_generator)
        cfg.setdefault("type", "QueryMaskGenerator")
        self.mask_generator: QueryMaskGenerator = MODELS.build(cfg)
        self.criterion = MaskProposalCriterion(**(criterion or {}))
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(score_thr=0.5, overlap_thr=0.8, mask_thr=0.5)
        self.test_cfg.update(test_cfg or {})

    # ------------------------------------------------------------------ forward
    def extract_feat(self, inputs: Tensor) -> Dict[str, Any]:
        return self.mask_generator(inputs)

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Mask logits of every query at the input size, ``[B, N, H, W]``."""
        logits = self.extract_feat(inputs)["mask_logits"]
        return F.interpolate(logits, size=inputs.shape[2:], mode="bilinear", align_corners=False)

    def _forward(self, inputs: Tensor, data_samples: SampleList = None) -> Tensor:
        return self.extract_feat(inputs)["mask_logits"]

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        outputs = self.extract_feat(inputs)
        size = tuple(inputs.shape[2:])
        targets = [_pad_to(gt_masks_from_panoptic(s).masks, size) for s in data_samples]
        losses = self.criterion(outputs, targets)
        with torch.no_grad():  # logged, not optimised (no 'loss' in the name)
            losses["num_gt"] = inputs.new_tensor(sum(t.shape[0] for t in targets) / max(len(targets), 1))
        return losses

    def predict(self, inputs: Tensor, data_samples: SampleList = None) -> SampleList:
        outputs = self.extract_feat(inputs)
        logits = F.interpolate(outputs["mask_logits"], size=inputs.shape[2:], mode="bilinear", align_corners=False)
        scores = outputs["objectness"].sigmoid()
        if data_samples is None:
            from mmseg.structures import SegDataSample

            data_samples = [SegDataSample(metainfo=dict(img_shape=inputs.shape[2:], ori_shape=inputs.shape[2:]))
                            for _ in range(inputs.shape[0])]
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            img_h, img_w = meta.get("img_shape", inputs.shape[2:])[:2]
            ori_h, ori_w = meta.get("ori_shape", (img_h, img_w))[:2]
            m = logits[i:i + 1, :, :int(img_h), :int(img_w)]
            if meta.get("flip", False):  # as mmseg's postprocess_result: undo a test-time flip
                dims = (3,) if meta.get("flip_direction", "horizontal") == "horizontal" else (2,)
                m = m.flip(dims)
            m = F.interpolate(m, size=(int(ori_h), int(ori_w)), mode="bilinear", align_corners=False)[0]
            probs = m.sigmoid()
            sample.pred_proposals = InstanceData(masks=probs > self.test_cfg["mask_thr"], scores=scores[i])
            sample.pred_agnostic_seg = PixelData(data=self.agnostic_panoptic(probs, scores[i])[None])
        return data_samples

    def agnostic_panoptic(self, mask_probs: Tensor, scores: Tensor) -> Tensor:
        """Non-overlapping segments from overlapping proposals (Mask2Former's panoptic inference,
        without classes): each pixel goes to the kept query maximising ``score * mask_prob``; a query
        keeps its segment if it is non-empty and covers >= ``overlap_thr`` of its own binary mask.
        Returns ``[H, W]`` long, query ``k`` -> id ``k + 1``, 0 = void."""
        out = torch.zeros(mask_probs.shape[-2:], dtype=torch.long, device=mask_probs.device)
        keep = torch.nonzero(scores > self.test_cfg["score_thr"]).flatten()
        if keep.numel() == 0:
            return out
        weighted = scores[keep][:, None, None] * mask_probs[keep]
        owner = weighted.argmax(0)
        binary = mask_probs[keep] >= self.test_cfg["mask_thr"]
        for j, q in enumerate(keep.tolist()):
            own = binary[j]
            seg = (owner == j) & own
            area, own_area = int(seg.sum()), int(own.sum())
            if area == 0 or own_area == 0 or area / own_area < self.test_cfg["overlap_thr"]:
                continue
            out[seg] = q + 1
        return out


def _pad_to(masks: Tensor, size: tuple) -> Tensor:
    """Pad ``[M, h, w]`` masks bottom/right with False to ``size`` (the data preprocessor pads images so)."""
    h, w = masks.shape[-2:]
    if (h, w) == tuple(size):
        return masks
    if h > size[0] or w > size[1]:
        raise ValueError(f"ground-truth masks {(h, w)} larger than the input batch {tuple(size)}")
    return F.pad(masks, (0, size[1] - w, 0, size[0] - h), value=False)


#: shipped stage-1 checkpoints, by name (``mask_generator_checkpoint='synth'``)
SHIPPED_GENERATORS = {"synth": ASSETS / "mask_generator_synth.pth"}


def resolve_generator_checkpoint(name_or_path: str) -> str:
    """A shipped generator's file (SHA-256 verified) for a name in :data:`SHIPPED_GENERATORS`;
    anything else is returned as given (a path or URL for mmengine's loader)."""
    path = SHIPPED_GENERATORS.get(str(name_or_path))
    if path is None:
        return str(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"mask_generator_checkpoint={name_or_path!r}: shipped file {path} is missing")
    verify_checkpoint(path, expected_sha256(str(path) + ".sha256"))
    return str(path)


def export_mask_generator(checkpoint_path: str, out: str, record: Optional[Dict[str, Any]] = None,
                          prefix: str = "mask_generator.") -> str:
    """Keep only the generator's weights of a stage-1 checkpoint (a small file to ship); writes
    ``out``, ``out.sha256`` and, with ``record``, ``out`` with ``.json``. Returns the SHA-256."""
    import json
    from pathlib import Path

    from mmengine.runner.checkpoint import CheckpointLoader

    ckpt = CheckpointLoader.load_checkpoint(checkpoint_path, map_location="cpu")
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise KeyError(f"{checkpoint_path}: no weights under prefix '{prefix}'")
    out_path = Path(out)
    torch.save({"state_dict": state, "meta": {"source": Path(checkpoint_path).name}}, out_path)
    digest = sha256_of(out_path)
    Path(str(out_path) + ".sha256").write_text(f"{digest}  {out_path.name}\n")
    if record is not None:
        out_path.with_suffix(".json").write_text(json.dumps({**record, "sha256": digest}, indent=1) + "\n")
    return digest


def load_mask_generator(module: nn.Module, checkpoint_path: str, prefix: str = "mask_generator.") -> nn.Module:
    """Load the ``prefix``-ed weights of a stage-1 checkpoint (a ``MaskProposalSegmentor`` trained by
    mmengine: a dict with ``'state_dict'``) into ``module`` (a :class:`QueryMaskGenerator`), strictly.

    Uses mmengine's ``CheckpointLoader`` (which ``ovbench.compat`` makes work with torch's
    ``weights_only=True`` default). Raises ``KeyError`` naming the missing / unexpected keys when the
    checkpoint and the module disagree (e.g. different generator sizes in the two configs).
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    checkpoint_path = resolve_generator_checkpoint(checkpoint_path)
    ckpt = CheckpointLoader.load_checkpoint(checkpoint_path, map_location="cpu")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise KeyError(f"{checkpoint_path}: not an mmengine checkpoint (expected a dict with 'state_dict', "
                       f"got {type(ckpt).__name__} with keys {sorted(ckpt)[:5] if isinstance(ckpt, dict) else '-'})")
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise KeyError(f"{checkpoint_path}: no weights under prefix '{prefix}' (is it a MaskProposalSegmentor "
                       f"checkpoint? first keys: {list(ckpt['state_dict'])[:5]})")
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shape:
        raise KeyError(
            f"{checkpoint_path}: the checkpoint's '{prefix}*' weights do not fit {type(module).__name__} "
            f"(do the generator configs agree?): missing {missing[:10]}, unexpected {unexpected[:10]}, "
            f"shape mismatch {[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in shape[:10]]}")
    module.load_state_dict(state, strict=True)
    return module
