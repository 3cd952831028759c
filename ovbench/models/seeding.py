"""Random streams of their own for parts of a model (common random numbers across a study's settings).

A trial's seed is set once (mmengine's ``set_random_seed``), and every module then draws its initial
weights from that one torch stream in build order. A segmentor builds its CLIP side first, so a PEFT
method, or one of its hyperparameters (H-CLIP's block size, LoRA's rank), that draws a different number
of random values shifts everything built after it: seed 0's head under q=32 is another head than seed 0's
head under q=64. A paired comparison by seed then compares two initialisations as well as two settings,
and cannot cancel what the head's initial weights do to the score. Building the head from a stream of
its own, seeded by the trial's seed, gives every setting of a study the same head for the same seed:
the variance-reduction technique of common random numbers. ``ablations/seed_parts.yaml`` and
``ablations/head_stream.yaml`` measure what it buys (docs/synthetic_benchmark.md).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def own_random_stream(enabled: bool = True) -> Iterator[None]:
    """Run the block with torch's CPU stream re-seeded by the trial's seed, then restore the stream.

    The trial's seed is ``torch.initial_seed()``: the value ``torch.manual_seed`` (which mmengine's
    ``set_random_seed`` calls) last set, whatever has been drawn since. The restore means that what is
    built after the block draws exactly what it would have drawn had the block drawn nothing.
    ``enabled=False`` runs the block on the shared stream (benchmark v4 and earlier)."""
    if not enabled:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch.initial_seed())
        yield
