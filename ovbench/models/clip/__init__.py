"""The CLIP wrapper (``OVCLIP``) registered in MMSeg's ``MODELS``."""
from mmseg.registry import MODELS

from ovbench.models.clip.templates import SINGLE, TEMPLATE_SETS, VILD, resolve_templates  # noqa: F401
from ovbench.models.clip.wrapper import OVCLIP, build_open_clip  # noqa: F401
from ovbench.models.clip.mask_tokens import encode_with_mask_tokens  # noqa: F401
from ovbench.models.clip.seve import SEVE  # noqa: F401

from ovbench.models.clip import tiny  # noqa: E402

MODELS.register_module(name="OVCLIP", module=OVCLIP, force=True)
MODELS.register_module(name="SEVE", module=SEVE, force=True)
tiny.register()  # open_clip knows 'ovbench-tiny-vit' and its pretrained tag 'synth' from here on

__all__ = ["OVCLIP", "SEVE", "encode_with_mask_tokens", "build_open_clip", "TEMPLATE_SETS", "resolve_templates"]
