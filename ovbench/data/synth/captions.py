"""Captions of synthetic scenes: the web alt-text of the miniature CLIP pretraining.

A caption lists the class phrases present in a scene (stuff and things, in a
random order, inside one of a few templates). A *hard negative* caption is the
same caption with exactly one attribute (a colour or a texture) changed, as in
NegCLIP (Yuksekgonul et al., ICLR 2023): it forces the text tower to bind words
instead of treating a caption as a bag of words. Held-out combinations never
appear, in positives or negatives (see :func:`world.held_out_of_pretraining`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from ovbench.data.synth.world import COLOURS, STUFF_TEXTURES, THING_MATERIALS, pretraining_classes

#: the zero-shot prompt; also one of the pretraining templates so prompts are in-distribution
PROMPT = "a scene with {}."
TEMPLATES = (PROMPT, "{}.", "a picture of {}.", "there is {}.")
_ALLOWED = frozenset(pretraining_classes())


def _join(phrases: Sequence[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption(phrases: Sequence[str], rng: np.random.Generator) -> str:
    """One caption naming every phrase once, order and template drawn from ``rng``."""
    order = [phrases[i] for i in rng.permutation(len(phrases))]
    return TEMPLATES[int(rng.integers(0, len(TEMPLATES)))].format(_join(order))


def hard_negative(phrases: Sequence[str], rng: np.random.Generator) -> Optional[List[str]]:
    """The phrases with one attribute of one phrase changed to another allowed class, or None."""
    present = set(phrases)
    for _ in range(8):
        i = int(rng.integers(0, len(phrases)))
        colour, tex = phrases[i].split(" ", 1)
        if rng.uniform() < 0.5:
            colour = list(COLOURS)[int(rng.integers(0, len(COLOURS)))]
        else:
            pool = THING_MATERIALS if tex in THING_MATERIALS else STUFF_TEXTURES
            tex = pool[int(rng.integers(0, len(pool)))]
        new = f"{colour} {tex}"
        if new in _ALLOWED and new not in present:
            out = list(phrases)
            out[i] = new
            return out
    return None
