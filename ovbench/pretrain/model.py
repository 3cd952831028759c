"""The tiny CLIP: an open_clip model config registered under its own name, and its shipped weights.

Nothing about loading is special-cased: the config is added to open_clip's
registry (``open_clip.add_model_config``) and the weights are read by
``open_clip.create_model(MODEL_NAME, pretrained=<file>)``, exactly like a real
CLIP's local checkpoint. The only extra step is the SHA-256 check of the shipped
file, so that a corrupted or swapped checkpoint fails loudly instead of giving
quietly wrong zero-shot numbers.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Tuple, Union

MODEL_NAME = "ovbench-tiny-vit"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
CONFIG_FILE = ASSETS / f"{MODEL_NAME}.json"  # open_clip config; lives in assets/ so it ships as package data
CHECKPOINT = ASSETS / "ovbench_tiny_vit.pt"
CHECKPOINT_SHA256 = ASSETS / "ovbench_tiny_vit.pt.sha256"
RECORD = ASSETS / "ovbench_tiny_vit.json"

_registered = False


def register() -> str:
    """Add ``assets/ovbench-tiny-vit.json`` to open_clip's registry (idempotent); returns the model name."""
    global _registered
    import ovbench  # noqa: F401  (compat shims before open_clip)
    import open_clip

    if not _registered or MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_FILE)
        _registered = True
    return MODEL_NAME


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
