"""Parameter-efficient fine-tuning methods, one per module, one registry.

``apply_peft(clip_model, dict(type='hclip', q=128, dcrc='release'))`` freezes
an open_clip model and attaches the method; ``merge_peft`` folds it into the
weights; ``count_parameters`` gives trainable / free / total per encoder.
Methods: ``frozen``, ``full``, ``attention`` (CAT-Seg), ``lora``, ``vpt``,
``oft``, ``hclip``, ``simo`` (FISA's query-only tuning of image and mask
tokens). See ``docs/peft.md``.
"""
from ovbench.peft.base import (  # noqa: F401
    ATTN_SITES,
    ENCODERS,
    FreeCount,
    PEFT_METHODS,
    PeftConfig,
    PeftConfigError,
    PeftMethod,
    attention_weights,
    apply_peft,
    attend,
    build_peft_config,
    count_parameters,
    get_peft_method,
    get_towers,
    merge_peft,
    regularization_loss,
    register_peft,
    site_linear,
)
from ovbench.peft import simple, lora, vpt, oft, hclip, simo  # noqa: F401,E402  (registration)
from ovbench.peft.orth import cayley, hyperspherical_energy, orthogonality_error  # noqa: F401,E402

__all__ = [
    "PEFT_METHODS",
    "PeftConfigError",
    "apply_peft",
    "build_peft_config",
    "count_parameters",
    "merge_peft",
    "regularization_loss",
    "cayley",
    "hyperspherical_energy",
]
