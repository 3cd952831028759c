"""The tiny CLIP of the embedded benchmark as an ordinary open_clip model.

``open_clip.create_model('ovbench-tiny-vit', pretrained='synth')`` works exactly
like ``create_model('ViT-B-16', pretrained='openai')``: the model config
(``ovbench/assets/ovbench-tiny-vit.json``) is added to open_clip's model
registry, and the shipped weights to its pretrained registry under the tag
``synth`` (open_clip's ``file`` entry: a local file, nothing downloaded). The
file's SHA-256 is checked before the tag is registered, so a corrupted or
swapped checkpoint is never loaded under that name.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Union

MODEL_NAME = "ovbench-tiny-vit"
PRETRAINED_TAG = "synth"
ASSETS = Path(__file__).resolve().parents[2] / "assets"
CONFIG_FILE = ASSETS / f"{MODEL_NAME}.json"
CHECKPOINT = ASSETS / "ovbench_tiny_vit.pt"
CHECKPOINT_SHA256 = ASSETS / "ovbench_tiny_vit.pt.sha256"

logger = logging.getLogger(__name__)
_state = {"config": False, "tag": None}  # tag: None (not tried), True, or the reason it is missing


def sha256_of(path: Union[str, os.PathLike]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expected_sha256(sha_file: Union[str, os.PathLike] = CHECKPOINT_SHA256) -> str:
    text = Path(sha_file).read_text().strip().split()
    if not text or len(text[0]) != 64:
        raise ValueError(f"{sha_file}: expected a 64-hex-digit SHA-256 (optionally followed by the file name)")
    return text[0].lower()


def verify_checkpoint(path: Union[str, os.PathLike], sha256: str) -> None:
    """Raise if ``path``'s SHA-256 is not ``sha256``."""
    got = sha256_of(path)
    if got != sha256.lower():
        raise RuntimeError(
            f"checkpoint {path}: SHA-256 mismatch (expected {sha256}, got {got}). The file is corrupted or "
            f"was replaced; restore it from git or re-create it with `ovbench pretrain-clip` and update "
            f"{CHECKPOINT_SHA256.name}."
        )


def register() -> str:
    """Register the model config and, if the shipped file verifies, the ``synth`` tag (idempotent)."""
    import open_clip
    from open_clip import pretrained as oc_pretrained

    if not _state["config"] or MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_FILE)
        _state["config"] = True
    if _state["tag"] is None:
        try:
            if not CHECKPOINT.is_file():
                raise FileNotFoundError(f"shipped checkpoint missing: {CHECKPOINT} (run `ovbench pretrain-clip`)")
            verify_checkpoint(CHECKPOINT, expected_sha256())
        except (OSError, ValueError, RuntimeError) as err:
            _state["tag"] = str(err)
            logger.warning("ovbench: pretrained tag %s:%s not registered: %s", MODEL_NAME, PRETRAINED_TAG, err)
        else:
            oc_pretrained._PRETRAINED.setdefault(MODEL_NAME, {})[PRETRAINED_TAG] = oc_pretrained._pcfg(
                file=str(CHECKPOINT)
            )
            _state["tag"] = True
    return MODEL_NAME
