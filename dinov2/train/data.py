"""The pretraining data stream: dataset + multi-crop augmentation + iBOT masks, resumable exactly.

Exact resume: the k-th sample that rank ``r`` draws (its *stream position*) is augmented with RNGs
seeded from ``(train.seed, r, position)`` and each batch's masks from its first position. The
augmentation of a sample therefore does not depend on the data-loader workers or on where a
previous run stopped, and a resumed run (sampler ``advance`` = positions already consumed) sees
exactly the batches an uninterrupted run would have seen. The caller's own RNG states are left
untouched (the seeding happens in a forked RNG scope).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Sampler

from dinov2 import distributed
from dinov2.data import (
    DataAugmentationDINO,
    MaskingGenerator,
    ShardedInfiniteSampler,
    collate_data_and_cast,
    make_dataset,
)

_SAMPLE, _BATCH = 0, 1  # what a stream seed is for: one sample's crops, or one batch's masks


def _stream_seed(seed: int, rank: int, position: int, purpose: int = _SAMPLE) -> int:
    return int(np.random.SeedSequence([seed, rank, position, purpose]).generate_state(1)[0])


class _SeededCall:
    """Run ``fn`` with torch's CPU RNG and python's ``random`` seeded, restoring both afterwards."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, fn: Callable[..., Any], *args) -> Any:
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            random.seed(self.seed)
            try:
                return fn(*args)
            finally:
                random.setstate(py_state)


class PositionedSampler(Sampler):
    """Yields ``(stream position, dataset index)``; positions start at ``advance``."""

    def __init__(self, sampler: Sampler[int], advance: int):
        self.sampler, self.advance = sampler, advance

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for k, index in enumerate(self.sampler):
            yield self.advance + k, index


class PositionSeededDataset(Dataset):
    """``dataset[(position, index)]`` = ``(dataset[index][0], position)`` under a position-seeded RNG."""

    def __init__(self, dataset: Dataset, seed: int, rank: int):
        self.dataset, self.seed, self.rank = dataset, seed, rank

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Any, int]:
        position, index = item
        image, _ = _SeededCall(_stream_seed(self.seed, self.rank, position))(self.dataset.__getitem__, index)
        return image, position


def _seeded_collate(samples: list[tuple[Any, int]], seed: int, rank: int, collate: Callable) -> dict[str, Any]:
    # Mask sampling uses python's random: seed it from the batch's first stream position.
    return _SeededCall(_stream_seed(seed, rank, samples[0][1], _BATCH))(collate, samples)


def _no_target(_: Any) -> tuple:
    return ()


def build_data_augmentation(cfg: DictConfig) -> DataAugmentationDINO:
    c = cfg.crops
    return DataAugmentationDINO(
        c.global_crops_scale, c.local_crops_scale, c.local_crops_number,
        global_crops_size=c.global_crops_size, local_crops_size=c.local_crops_size,
        global_crops_1_blur_p=c.global_crops_1_blur_p, global_crops_2_blur_p=c.global_crops_2_blur_p,
        local_crops_blur_p=c.local_crops_blur_p, global_crops_2_solarize_p=c.global_crops_2_solarize_p,
    )  # fmt: skip


def build_collate_fn(cfg: DictConfig, dtype: torch.dtype = torch.float32) -> Callable[[list], dict[str, Any]]:
    """``collate_data_and_cast`` with the official mask generator (at most half of the patches per block)."""
    grid = cfg.crops.global_crops_size // cfg.student.patch_size
    mask_generator = MaskingGenerator(input_size=(grid, grid), max_num_patches=0.5 * grid * grid)
    return partial(
        collate_data_and_cast,
        mask_ratio_tuple=tuple(cfg.ibot.mask_ratio_min_max),
        mask_probability=cfg.ibot.mask_sample_probability,
        n_tokens=grid * grid,
        mask_generator=mask_generator,
        dtype=dtype,
    )


def build_train_dataset(cfg: DictConfig) -> Dataset:
    """The augmented training dataset of ``train.dataset_path`` (the one place to swap it, e.g. paired NCT data)."""
    return make_dataset(dataset_str=cfg.train.dataset_path, transform=build_data_augmentation(cfg),
                        target_transform=_no_target)  # fmt: skip


def build_train_data_loader(
    cfg: DictConfig, start_iteration: int, dataset: Dataset | None = None, dtype: torch.dtype = torch.float32
) -> DataLoader:
    """Endless loader of collated batches for this rank, positioned after ``start_iteration`` batches."""
    dataset = build_train_dataset(cfg) if dataset is None else dataset
    rank, batch_size = distributed.get_global_rank(), cfg.train.batch_size_per_gpu
    advance = start_iteration * batch_size
    sampler = ShardedInfiniteSampler(sample_count=len(dataset), shuffle=True, seed=cfg.train.seed, advance=advance)
    collate = partial(_seeded_collate, seed=cfg.train.seed, rank=rank, collate=build_collate_fn(cfg, dtype))
    return DataLoader(
        PositionSeededDataset(dataset, cfg.train.seed, rank),
        sampler=PositionedSampler(sampler, advance),
        batch_size=batch_size,
        num_workers=cfg.train.num_workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        persistent_workers=False,
        collate_fn=collate,
        # Its own generator: creating the iterator must not draw from the training RNG (stochastic depth).
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
