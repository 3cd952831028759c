"""Hand the current dataset's vocabulary to an open-vocabulary model.

Training, validation and testing use different vocabularies (the training set's
seen classes; each evaluation set's full list). The model cannot see the
dataset, so this hook calls ``model.set_vocabulary(classes, prompts, thing_classes)``
(:class:`~ovbench.models.segmentors.vocabulary.OpenVocabularyMixin`) from the
dataloader in use before each phase and restores the training vocabulary after
validation. ``thing_classes`` (None for semantic sets) drives panoptic inference.
"""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


def _model(runner):
    model = runner.model
    return model.module if is_model_wrapper(model) else model


def _vocabulary(dataloader) -> tuple:
    dataset = dataloader.dataset
    meta = dataset.metainfo
    classes = meta.get("classes")
    if not classes:
        raise RuntimeError(f"VocabularyHook: dataset {type(dataset).__name__} has no 'classes' in its metainfo")
    things = meta.get("thing_classes")
    return tuple(classes), dict(meta.get("class_prompts") or {}), None if things is None else tuple(things)


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Set the model's vocabulary from the active dataloader's dataset (train, val, test)."""

    priority = "VERY_HIGH"

    def _set(self, runner, dataloader) -> None:
        model = _model(runner)
        if hasattr(model, "set_vocabulary"):
            classes, prompts, things = _vocabulary(dataloader)
            model.set_vocabulary(classes, prompts, thing_classes=things)

    def before_train(self, runner) -> None:
        self._set(runner, runner.train_dataloader)

    def before_val(self, runner) -> None:
        self._set(runner, runner.val_dataloader)

    def after_val(self, runner) -> None:
        # Only when validating inside training (a built train loop); never build one here.
        loop = getattr(runner, "_train_loop", None)
        if loop is not None and not isinstance(loop, dict):
            self._set(runner, runner.train_dataloader)

    def before_test(self, runner) -> None:
        self._set(runner, runner.test_dataloader)
