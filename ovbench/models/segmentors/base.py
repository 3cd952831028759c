"""The base of every open-vocabulary segmentor: the CLIP, the vocabulary and the PEFT regulariser.

Both ovbench segmentors (cost aggregation, mask classification) predict over the
current vocabulary with an :class:`~ovbench.models.clip.OVCLIP` inside. What they
share lives here, once:

* the CLIP is built through MMSeg's ``MODELS`` registry as ``self.backbone``
  (``type='OVCLIP'`` unless the config names another);
* ``model.pretrained`` is refused: ``mmseg.apis.init_model`` passes ``None``, CLIP
  weights come from ``clip.pretrained`` and the rest from the checkpoint;
* the vocabulary (:class:`OpenVocabularyMixin`) and its text embeddings
  (:meth:`encode_vocabulary`);
* :meth:`loss` = the subclass's :meth:`task_losses` + the PEFT method's
  regulariser (H-CLIP's soft orthogonality): a new segmentor cannot forget it.

Subclasses also deriving from MMSeg's ``EncoderDecoder`` get their backbone built by
``EncoderDecoder.__init__`` (from the same config), so its initialisation runs as
MMSeg wrote it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor

from ovbench.models.clip import OVCLIP
from ovbench.models.segmentors.vocabulary import OpenVocabularyMixin
from ovbench.peft import regularization_loss


class OVSegmentorBase(OpenVocabularyMixin, BaseSegmentor):
    """CLIP backbone + current vocabulary + PEFT regulariser (see the module docstring).

    Args:
        clip: config of the CLIP wrapper (``type='OVCLIP'`` by default).
        class_names: a fixed vocabulary; normally ``None`` (``VocabularyHook`` or ``dataset_meta``).
        pretrained: must be ``None`` (kept because ``mmseg.apis.init_model`` sets it).
        **kwargs: the MMSeg parent's arguments (``data_preprocessor``, ``init_cfg``; for an
            ``EncoderDecoder``: ``decode_head``, ``train_cfg``, ``test_cfg``...).
    """

    #: where the refused ``model.pretrained`` should go instead (named in the error)
    weights_hint = "set CLIP weights with clip.pretrained"

    def __init__(self, clip: Dict[str, Any], class_names: Optional[Sequence[str]] = None,
                 pretrained: Optional[str] = None, **kwargs: Any) -> None:
        if pretrained is not None:
            raise ValueError(f"{type(self).__name__}: {self.weights_hint}, not model.pretrained")
        clip = {"type": "OVCLIP", **dict(clip)}
        if isinstance(self, EncoderDecoder):  # EncoderDecoder.__init__ builds its backbone through MODELS
            super().__init__(backbone=clip, **kwargs)
        else:
            super().__init__(**kwargs)
            self.backbone = MODELS.build(clip)
        self.backbone: OVCLIP
        self.align_corners = False
        self._class_names = tuple(class_names) if class_names else None

    @property
    def out_channels(self) -> int:
        """One output channel per class of the current vocabulary (``EncoderDecoder`` reads it)."""
        return self.num_classes

    def encode_vocabulary(self) -> Tuple[Tensor, List[slice]]:
        """Text embeddings ``[P, D]`` of the vocabulary's prompts, and each class's slice of them."""
        names, groups = self.prompt_names()
        return self.backbone.encode_text(names), groups

    def task_losses(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """The segmentor's own losses (and logged statistics)."""
        raise NotImplementedError

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        """:meth:`task_losses` plus ``loss_peft_reg``, the PEFT method's regulariser, when it has one."""
        losses = self.task_losses(inputs, data_samples)
        reg = regularization_loss(self.backbone.clip)
        if reg is not None:
            losses["loss_peft_reg"] = reg
        return losses
