"""``make_data_loader`` (official signature): a torch DataLoader over one of our samplers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from .samplers import EpochSampler, InfiniteSampler, ShardedInfiniteSampler

logger = logging.getLogger("dinov2")


class SamplerType(Enum):
    DISTRIBUTED = 0
    EPOCH = 1
    INFINITE = 2
    SHARDED_INFINITE = 3
    SHARDED_INFINITE_NEW = 4


def _make_sampler(
    *, dataset: Dataset, type: SamplerType | None, shuffle: bool, seed: int, size: int, advance: int
) -> Sampler | None:
    sample_count = len(dataset)
    if type in (
        SamplerType.INFINITE,
        SamplerType.SHARDED_INFINITE,
        SamplerType.SHARDED_INFINITE_NEW,
    ):
        if size > 0:
            raise ValueError(
                f"sampler_size={size} is invalid for an infinite sampler; leave it at -1"
            )
        cls = InfiniteSampler if type == SamplerType.INFINITE else ShardedInfiniteSampler
        return cls(sample_count=sample_count, shuffle=shuffle, seed=seed, advance=advance)
    if advance > 0:
        raise ValueError(f"sampler_advance={advance} needs an infinite sampler type, got {type}")
    if type == SamplerType.EPOCH:
        size = size if size > 0 else sample_count
        return EpochSampler(size=size, sample_count=sample_count, shuffle=shuffle, seed=seed)
    if type == SamplerType.DISTRIBUTED:
        if size > 0:
            raise ValueError(
                f"sampler_size={size} is invalid for the distributed sampler; leave it at -1"
            )
        return torch.utils.data.DistributedSampler(
            dataset=dataset, shuffle=shuffle, seed=seed, drop_last=False
        )
    return None


def make_data_loader(
    *,
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    shuffle: bool = True,
    seed: int = 0,
    sampler_type: SamplerType | None = SamplerType.INFINITE,
    sampler_size: int = -1,
    sampler_advance: int = 0,
    drop_last: bool = True,
    persistent_workers: bool = False,
    collate_fn: Callable[[list], Any] | None = None,
) -> torch.utils.data.DataLoader:
    """DataLoader of ``batch_size`` samples per rank.

    ``sampler_advance`` is the number of samples this rank already consumed (for resume:
    ``iteration * batch_size``); the infinite samplers then continue with the exact same order.
    """
    sampler = _make_sampler(
        dataset=dataset,
        type=sampler_type,
        shuffle=shuffle,
        seed=seed,
        size=sampler_size,
        advance=sampler_advance,
    )
    logger.info(
        "data loader: sampler %s, batch %d, %d workers",
        type(sampler).__name__,
        batch_size,
        num_workers,
    )
    return torch.utils.data.DataLoader(
        dataset,
        sampler=sampler,
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=persistent_workers and num_workers > 0,
        collate_fn=collate_fn,
    )
