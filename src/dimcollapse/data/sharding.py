"""Which images each process sees in an epoch, and the seeds that make a run repeatable.

Each epoch's order is a permutation from a generator seeded by (seed, epoch), truncated to a
multiple of ``world_size`` and dealt out like ``DistributedSampler`` (rank r takes positions
r, r + world_size, ...), so the ranks' shards are disjoint and every loader path draws the same
indices.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dimcollapse.errors import UsageError


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from a tuple of integers (e.g. seed, epoch, rank)."""
    state = np.random.SeedSequence([int(v) % (1 << 64) for v in values]).generate_state(
        2, dtype=np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def shard_indices(n: int, seed: int, epoch: int, rank: int, world_size: int) -> Tensor:
    """This rank's indices for an epoch: a seeded permutation, truncated and strided by rank."""
    gen = torch.Generator().manual_seed(mix_seed(seed, epoch, 0))
    perm = torch.randperm(n, generator=gen)
    total = (n // world_size) * world_size
    return perm[rank:total:world_size]


def check_loader_args(batch_size: int, workers: int, rank: int, world_size: int) -> None:
    """Raise :class:`UsageError` for a batch size, worker count or rank a loader cannot use."""
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UsageError(f"workers must be 0 or more, got {workers}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
