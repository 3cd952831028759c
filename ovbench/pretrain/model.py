"""The tiny CLIP: an open_clip model config registered under its own name, and its shipped weights.

Nothing about loading is special-cased: the config is added to open_clip's
registry (``open_clip.add_model_config``) and the weights are read by
``open_clip.create_model(MODEL_NAME, pretrained=<file>)``, exactly like a real
CLIP's local checkpoint. The only extra step is the SHA-256 check of the shipped
file, so that a corrupted or swapped checkpoint fails loudly instead of giving
quietly wrong zero-shot numbers.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple, Union

# One definition of the model, its files and their checks: ovbench.models.clip.tiny.
from ovbench.models.clip.tiny import (  # noqa: F401  (re-exported)
    ASSETS,
    CHECKPOINT,
    CHECKPOINT_SHA256,
    CONFIG_FILE,
    MODEL_NAME,
    expected_sha256,
    register,
    sha256_of,
    verify_checkpoint,
)

RECORD = ASSETS / "ovbench_tiny_vit.json"


def load_tiny_clip(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    sha256: Optional[str] = None,
    device: str = "cpu",
) -> Tuple["object", "object"]:
    """(model in eval mode, tokenizer) of the tiny CLIP.

    ``checkpoint`` defaults to the shipped asset, whose SHA-256 is always
    checked against ``ovbench_tiny_vit.pt.sha256``; for another file the check
    runs when ``sha256`` is given.
    """
    import open_clip

    register()
    if checkpoint is None:
        checkpoint = CHECKPOINT
        if not CHECKPOINT.is_file():
            raise FileNotFoundError(
                f"shipped tiny-CLIP checkpoint missing: {CHECKPOINT}. Re-create it with `ovbench pretrain-clip`."
            )
        sha256 = expected_sha256()
    checkpoint = os.fspath(checkpoint)
    if sha256 is not None:
        verify_checkpoint(checkpoint, sha256)
    model = open_clip.create_model(MODEL_NAME, pretrained=checkpoint, device=device)
    model.eval()
    return model, open_clip.get_tokenizer(MODEL_NAME)
