"""ovbench.models.seeding: a block on a stream of its own, seeded by the trial's seed."""
from __future__ import annotations

import torch

from ovbench.models.seeding import own_random_stream


def test_own_stream_starts_from_the_seed_and_leaves_the_shared_stream_as_it_was():
    torch.manual_seed(5)
    fresh = torch.rand(3)
    torch.rand(10)  # what a CLIP side may have drawn first
    expected_next = torch.random.get_rng_state()
    with own_random_stream():
        inside = torch.rand(3)
    assert torch.equal(inside, fresh)  # the trial's seed, whatever was drawn before
    assert torch.equal(torch.random.get_rng_state(), expected_next)  # as if the block drew nothing

    torch.manual_seed(5)
    torch.rand(10)
    with own_random_stream(enabled=False):
        assert not torch.equal(torch.rand(3), fresh)  # the shared stream, where it was
