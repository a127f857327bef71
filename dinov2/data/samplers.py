"""Samplers for pretraining (infinite, sharded over ranks, resumable) and evaluation (epoch).

Resumable position: the infinite samplers take ``advance`` = number of indices this rank has
already consumed (e.g. ``iteration * batch_size_per_gpu``) and continue exactly where an
uninterrupted run would be. Each pass over the data uses a permutation that depends only on
``(seed, pass index)``, so skipping ahead never needs to replay earlier passes. (The official
``ShardedInfiniteSampler`` does not restore the order: it skips whole passes of ``sample_count``
indices although a rank only sees ``sample_count / world_size`` of them per pass.)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import numpy as np
import torch.distributed as dist
from torch.utils.data.sampler import Sampler

logger = logging.getLogger("dinov2")


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _pass_permutation(sample_count: int, seed: int, pass_index: int) -> np.ndarray:
    """Permutation of range(sample_count) for one pass; a pure function of (seed, pass_index)."""
    return np.random.default_rng([seed, pass_index]).permutation(sample_count)


class InfiniteSampler(Sampler[int]):
    """Endless indices; pass ``p`` visits ``order_p[start::step]`` where ``order_p`` is range(n)
    or a (seed, p)-permutation. Ranks see disjoint parts of every pass; all samples are used,
    so shards may differ in length by one when ``step`` does not divide ``sample_count``.

    Args:
        sample_count: dataset length n.
        shuffle: permute every pass.
        seed: base seed (same on all ranks).
        start: this rank's offset (default: global rank); step: number of shards (default: world
        size). advance: indices of this rank's stream to skip (samples already consumed, for
        resume).
    """

    drop_remainder = False

    def __init__(
        self,
        *,
        sample_count: int,
        shuffle: bool = False,
        seed: int = 0,
        start: int | None = None,
        step: int | None = None,
        advance: int = 0,
    ):
        rank, world = _rank_and_world()
        self._sample_count = sample_count
        self._shuffle = shuffle
        self._seed = seed
        self._start = rank if start is None else start
        self._step = world if step is None else step
        self._advance = advance
        if not 0 <= self._start < self._step:
            raise ValueError(f"sampler start={self._start} must be in [0, step={self._step})")
        if self._shard_length() == 0:
            raise ValueError(
                f"dataset of {sample_count} samples is too small for {self._step} shards"
            )

    def _shard_length(self) -> int:
        if self.drop_remainder:
            return self._sample_count // self._step
        return len(range(self._start, self._sample_count, self._step))

    def _shard(self, pass_index: int) -> np.ndarray:
        if self._shuffle:
            order = _pass_permutation(self._sample_count, self._seed, pass_index)
        else:
            order = np.arange(self._sample_count)
        return order[self._start :: self._step][: self._shard_length()]

    def __iter__(self) -> Iterator[int]:
        pass_index, offset = divmod(self._advance, self._shard_length())
        for p in itertools.count(pass_index):
            yield from (int(i) for i in self._shard(p)[offset:])
            offset = 0


class ShardedInfiniteSampler(InfiniteSampler):
    """``InfiniteSampler`` whose shards all have ``sample_count // step`` indices per pass, so the
    ranks stay in lockstep (the last ``sample_count % step`` indices of each permutation are
    dropped)."""

    drop_remainder = True

    def __init__(self, *, use_new_shuffle_tensor_slice: bool = False, **kwargs):
        # ``use_new_shuffle_tensor_slice`` is accepted for the official signature; one algorithm
        # here.
        super().__init__(**kwargs)
        dropped = self._sample_count % self._step
        if dropped:
            logger.warning(
                "sharded sampler drops %d samples per pass (%d samples, %d shards)",
                dropped,
                self._sample_count,
                self._step,
            )


class EpochSampler(Sampler[int]):
    """Finite sampler for one epoch of ``size`` indices (tiling the dataset), sharded by rank.

    Use ``set_epoch(e)`` to get a different permutation per epoch when shuffling.
    """

    def __init__(
        self,
        *,
        size: int,
        sample_count: int,
        shuffle: bool = False,
        seed: int = 0,
        start: int | None = None,
        step: int | None = None,
    ):
        rank, world = _rank_and_world()
        self._size = size
        self._sample_count = sample_count
        self._shuffle = shuffle
        self._seed = seed
        self._start = rank if start is None else start
        self._step = world if step is None else step
        self._epoch = 0

    def __iter__(self) -> Iterator[int]:
        n_tiles = -(-self._size // self._sample_count)
        indices = np.tile(np.arange(self._sample_count), n_tiles)
        if self._shuffle:
            indices = np.random.default_rng([self._seed, self._epoch]).permutation(indices)
        yield from (int(i) for i in indices[: self._size][self._start :: self._step])

    def __len__(self) -> int:
        return len(range(self._start, self._size, self._step))

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch
