"""The vocabulary of an open-vocabulary segmentor: class names, their prompts, thing classes.

Every ovbench segmentor predicts over the *current* vocabulary, which changes
between training (the training set's seen classes) and each evaluation set. The
model cannot see the dataset, so :class:`~ovbench.models.segmentors.vocabulary_hook.VocabularyHook`
calls :meth:`OpenVocabularyMixin.set_vocabulary` before each phase; outside a Runner
the names come from ``dataset_meta`` (restored by ``mmseg.apis.init_model``) or from
an explicit ``set_vocabulary`` call.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor


class OpenVocabularyMixin:
    """Class names, prompt groups (a class prompted by several names scores their max, e.g.
    VOC-20b's 'background') and thing classes (panoptic inference) of the current vocabulary."""

    _class_names: Optional[Tuple[str, ...]] = None
    _class_prompts: Optional[Dict[str, Sequence[str]]] = None
    _thing_classes: Optional[Tuple[str, ...]] = None

    def set_vocabulary(self, class_names: Sequence[str], prompts: Optional[Dict[str, Sequence[str]]] = None,
                       thing_classes: Optional[Sequence[str]] = None) -> None:
        """Set the classes to predict; ``prompts`` maps a class to the names it is prompted with;
        ``thing_classes`` names the countable classes (None: unknown, see :meth:`thing_names`)."""
        self._class_names = tuple(class_names)
        self._class_prompts = dict(prompts or {})
        self._thing_classes = None if thing_classes is None else tuple(thing_classes)

    @property
    def _meta(self) -> dict:
        return getattr(self, "dataset_meta", None) or {}

    @property
    def class_names(self) -> tuple:
        if self._class_names:
            return self._class_names
        if self._meta.get("classes"):
            return tuple(self._meta["classes"])
        raise RuntimeError(
            f"{type(self).__name__} has no vocabulary: train/test through a Runner with "
            "`custom_hooks=[dict(type='VocabularyHook')]`, load a checkpoint whose meta has "
            "'dataset_meta' (mmseg.apis.init_model does), or call set_vocabulary(class_names)."
        )

    @property
    def num_classes(self) -> int:  # read by EncoderDecoder.slide_inference
        return len(self.class_names)

    @property
    def class_prompts(self) -> Dict[str, Sequence[str]]:
        if self._class_prompts is not None:
            return self._class_prompts
        return dict(self._meta.get("class_prompts") or {})

    def thing_names(self) -> Optional[Tuple[str, ...]]:
        """The thing classes from ``set_vocabulary``, else ``dataset_meta['thing_classes']``, else None."""
        if self._thing_classes is not None:
            return self._thing_classes
        things = self._meta.get("thing_classes")
        return None if things is None else tuple(things)

    def prompt_names(self) -> Tuple[Tuple[str, ...], List[slice]]:
        """The text prompts in order, and per class the slice of them it owns."""
        names: List[str] = []
        groups: List[slice] = []
        prompts = self.class_prompts
        for cls in self.class_names:
            own = list(prompts.get(cls) or [cls])
            groups.append(slice(len(names), len(names) + len(own)))
            names.extend(own)
        return tuple(names), groups

    @staticmethod
    def select_classes(groups: List[slice], classes: Sequence[int]) -> Tuple[List[int], List[slice]]:
        """A sub-vocabulary: the prompt indices of ``classes`` (in that order), and each kept class's
        slice of that shorter prompt list (as :meth:`prompt_names` gives for the whole vocabulary)."""
        rows: List[int] = []
        kept: List[slice] = []
        for cls in classes:
            group = groups[cls]
            kept.append(slice(len(rows), len(rows) + group.stop - group.start))
            rows.extend(range(group.start, group.stop))
        return rows, kept

    @staticmethod
    def merge_prompts(scores: Tensor, groups: List[slice], dim: int = 1) -> Tensor:
        """Prompt scores along ``dim`` (P entries) -> class scores (C entries, max within each class)."""
        if all(g.stop - g.start == 1 for g in groups):
            return scores
        moved = scores.movedim(dim, -1)
        merged = torch.stack([moved[..., g].max(-1).values for g in groups], -1)
        return merged.movedim(-1, dim)
