"""PEFT configuration: the registry, the fields every method shares, and their parsing.

``build_peft_config(dict(type='hclip', q=128))`` -> the registered method's config
dataclass, with every unknown name or key an error that says what was expected.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ovbench.errors import InputError


class PeftConfigError(InputError, ValueError):
    """A PEFT config that is malformed or does not fit its model. The message names the key
    (``peft.<field> (<method>)``) and the expected form; as an :class:`InputError`, every command reports
    it as one line with exit code 2, and a sweep records it as the trial's reason."""


class UnknownPeftMethod(PeftConfigError, KeyError):
    """``peft.type`` names no registered method."""


class PeftConfigTypeError(PeftConfigError, TypeError):
    """A PEFT field of the wrong type, or a key the method does not have."""


ENCODERS = ("image", "text")
ATTN_SITES = ("q", "k", "v", "out")
MLP_SITES = ("mlp_fc", "mlp_proj")
SITE_ALIASES = {"attn": ATTN_SITES, "qkv": ("q", "k", "v"), "mlp": MLP_SITES, "all": ATTN_SITES + MLP_SITES}

#: method name -> config dataclass (its ``method_cls`` builds the module)
PEFT_METHODS: Dict[str, type] = {}


def register_peft(name: str) -> Callable[[type], type]:
    """Class decorator registering a config dataclass under ``name``."""

    def deco(cfg_cls: type) -> type:
        if name in PEFT_METHODS:
            raise KeyError(f"PEFT method {name!r} registered twice")
        cfg_cls.method_name = name
        PEFT_METHODS[name] = cfg_cls
        return cfg_cls

    return deco


# --------------------------------------------------------------------------- config
@dataclasses.dataclass
class PeftConfig:
    """Fields every method shares.

    encoders: ``'image' | 'text' | 'both'`` (or a list).
    blocks:   ``None`` (all), a list of block indices (negative allowed) for
              both encoders, or ``{'image': [...], 'text': [...]}``.
    sites:    names among ``q, k, v, out, mlp_fc, mlp_proj`` (aliases:
              ``attn``, ``qkv``, ``mlp``, ``all``).
    lr_mult:  the learning rate of the CLIP's parameters (this method's included)
              relative to the optimizer's, or ``None`` to leave the config's
              ``paramwise_cfg``. Methods that train more CLIP weights may need a lower
              one; it travels with the method so that a study sweeping whole PEFT
              configs can give each its own (``ovbench.models.optim``).
    """

    encoders: Any = "both"
    blocks: Any = None
    sites: Any = ("q", "k", "v", "out")
    lr_mult: Any = None

    # class attributes (not fields): set by subclasses / by ``register_peft``
    allowed_sites = ATTN_SITES + MLP_SITES
    method_name = ""

    def __post_init__(self) -> None:
        self.encoders = _parse_encoders(self.encoders, self.method_name)
        self.sites = _parse_sites(self.sites, self.allowed_sites, self.method_name)
        self.lr_mult = _parse_lr_mult(self.lr_mult, self.method_name)

    def block_indices(self, encoder: str, n_layers: int) -> List[int]:
        spec = self.blocks
        if isinstance(spec, dict):
            unknown = set(spec) - set(ENCODERS)
            if unknown:
                raise PeftConfigError(f"peft.blocks: unknown encoder keys {sorted(unknown)}; expected 'image'/'text'")
            spec = spec.get(encoder)
        if spec is None:
            return list(range(n_layers))
        out = []
        for i in spec:
            j = int(i) + n_layers if int(i) < 0 else int(i)
            if not 0 <= j < n_layers:
                raise PeftConfigError(f"peft.blocks: index {i} out of range for the {encoder} encoder ({n_layers} blocks)")
            out.append(j)
        return sorted(set(out))


def _parse_encoders(value: Any, method: str) -> Tuple[str, ...]:
    if value in (None, "none"):
        return ()
    if value is True or value == "both":
        return ENCODERS
    if isinstance(value, str):
        value = [value]
    out = tuple(e for e in ENCODERS if e in set(value))
    bad = set(value) - set(ENCODERS)
    if bad:
        raise PeftConfigError(f"peft.encoders ({method}): unknown {sorted(bad)}; expected 'image', 'text' or 'both'")
    return out


def _parse_lr_mult(value: Any, method: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PeftConfigError(f"peft.lr_mult ({method}): expected a positive finite number or None, got {value!r}")
    return float(value)


def _parse_sites(value: Any, allowed: Sequence[str], method: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    out: List[str] = []
    for s in value:
        for t in SITE_ALIASES.get(s, (s,)):
            if t not in ATTN_SITES + MLP_SITES:
                raise PeftConfigError(
                    f"peft.sites ({method}): unknown site {s!r}; expected some of "
                    f"{list(ATTN_SITES + MLP_SITES)} or an alias {sorted(SITE_ALIASES)}"
                )
            if t not in allowed:
                raise PeftConfigError(f"peft.sites ({method}): site {t!r} is not supported; supported: {list(allowed)}")
            if t not in out:
                out.append(t)
    return tuple(out)


def build_peft_config(cfg: Any) -> PeftConfig:
    """A dict ``{'type': name, **fields}`` (or a config object) -> the method's config dataclass."""
    if isinstance(cfg, PeftConfig):
        return cfg
    if cfg is None:
        cfg = {"type": "frozen"}
    if isinstance(cfg, str):
        cfg = {"type": cfg}
    cfg = dict(cfg)
    name = cfg.pop("type", None)
    if name not in PEFT_METHODS:
        raise UnknownPeftMethod(f"peft.type: unknown method {name!r}; expected one of {sorted(PEFT_METHODS)}")
    cls = PEFT_METHODS[name]
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    bad = set(cfg) - fields
    if bad:
        raise PeftConfigTypeError(f"peft ({name}): unknown keys {sorted(bad)}; expected some of {sorted(fields)}")
    return cls(**cfg)
