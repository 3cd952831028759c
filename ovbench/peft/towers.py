"""The open_clip towers a PEFT method adapts, and which encoder a parameter belongs to."""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional

from torch import nn

from ovbench.peft.config import ENCODERS

@dataclasses.dataclass
class Tower:
    """One open_clip encoder: its transformer and the blocks' layout."""

    name: str
    transformer: nn.Module
    pos_embed: Optional[nn.Parameter]

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.resblocks

    @property
    def width(self) -> int:
        return int(self.transformer.width)

    @property
    def layers(self) -> int:
        return len(self.transformer.resblocks)


def get_towers(model: nn.Module) -> Dict[str, Tower]:
    """The image and text towers of an open_clip ``CLIP``/``CustomTextCLIP`` (or an object exposing ``.clip``)."""
    model = getattr(model, "clip", model)
    towers: Dict[str, Tower] = {}
    visual = getattr(model, "visual", None)
    if visual is not None and hasattr(visual, "transformer"):
        towers["image"] = Tower("image", visual.transformer, getattr(visual, "positional_embedding", None))
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "transformer"):
        towers["text"] = Tower("text", text.transformer, getattr(text, "positional_embedding", None))
    elif hasattr(model, "transformer") and hasattr(model, "token_embedding"):
        towers["text"] = Tower("text", model.transformer, getattr(model, "positional_embedding", None))
    if not towers:
        raise TypeError(f"peft: {type(model).__name__} is not an open_clip CLIP model (no .visual / .transformer)")
    return towers


def encoder_of_param(name: str) -> str:
    """Which encoder a parameter name of an open_clip model (+ peft method) belongs to."""
    name = name[len("clip."):] if name.startswith("clip.") else name
    if name.startswith("visual."):
        return "image"
    if name.startswith("peft_method."):
        # method parameters carry their encoder as a name prefix: image_R, lora_a.text_3_q, ...
        for part in name[len("peft_method."):].split("."):
            for enc in ENCODERS:
                if part.startswith(enc + "_"):
                    return enc
        return "shared"
    if name.startswith(("text.", "transformer.", "token_embedding", "positional_embedding", "ln_final", "text_projection")):
        return "text"
    return "shared"
