"""The pretraining data stream: dataset + multi-crop augmentation + iBOT masks, resumable exactly.

Exact resume: the k-th sample that rank ``r`` draws (its *stream position*) is augmented with RNGs
seeded from ``(train.seed, r, position)`` and each batch's masks from its first position. The
augmentation of a sample therefore does not depend on the data-loader workers or on where a
previous run stopped, and a resumed run (sampler ``advance`` = positions already consumed) sees
exactly the batches an uninterrupted run would have seen. The caller's own RNG states are left
untouched (the seeding happens in a forked RNG scope).

Two augmentation paths (config key ``train.augmentation``): ``per_image`` (the reference: each
sample is augmented by :class:`DataAugmentationDINO` in the loader) and ``batched`` (the loader only
decodes; :class:`BatchAugmenter` augments whole uint8 batches on the training device with
:class:`BatchedDataAugmentationDINO`, parameters drawn from a generator seeded from
``(train.seed, rank, the batch's first stream position)``, i.e. from the iteration). On a GPU the
augmentation runs in the main process (:class:`BatchedAugmentationLoader`); on the CPU it runs in
the loader's collate, i.e. in the data-loader workers when ``train.num_workers > 0``. ``auto`` is
``batched`` on CUDA and ``per_image`` on the CPU.
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
from dinov2.data.batched_augmentations import BatchedDataAugmentationDINO, DecodedImage
from dinov2.data.batched_crop import RaggedImages
from dinov2.data.collate import collate_decoded_and_mask

# What a stream seed is for: one sample's crops, one batch's masks, one batch's crops (batched
# path).
_SAMPLE, _BATCH, _BATCH_CROPS = 0, 1, 2
AUGMENTATION_PATHS = ("per_image", "batched", "auto")


def _stream_seed(seed: int, rank: int, position: int, purpose: int = _SAMPLE) -> int:
    return int(np.random.SeedSequence([seed, rank, position, purpose]).generate_state(1)[0])


class _SeededCall:
    """Run ``fn`` with torch's CPU RNG and python's ``random`` seeded, restoring both afterwards."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, fn: Callable[..., Any], *args) -> Any:
        py_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also (lazily) re-seed the CUDA
            # generators,
            # which fork_rng(devices=[]) does not restore, and it records a stack trace per call (~2
            # ms).
            torch.default_generator.manual_seed(self.seed)
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
    """``dataset[(position, index)]`` = ``(dataset[index][0], position)`` under a position-seeded
    RNG.

    ``seeded=False`` skips the seeding, for datasets that draw nothing (the batched path's
    decode-only samples): it costs more than decoding a 28-px digit.
    """

    def __init__(self, dataset: Dataset, seed: int, rank: int, seeded: bool = True):
        self.dataset, self.seed, self.rank, self.seeded = dataset, seed, rank, seeded

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> tuple[Any, int]:
        position, index = item
        if not self.seeded:
            return self.dataset[index][0], position
        image, _ = _SeededCall(_stream_seed(self.seed, self.rank, position))(
            self.dataset.__getitem__, index
        )
        return image, position


def _seeded_collate(
    samples: list[tuple[Any, int]], seed: int, rank: int, collate: Callable
) -> dict[str, Any]:
    # Mask sampling uses python's random: seed it from the batch's first stream position.
    return _SeededCall(_stream_seed(seed, rank, samples[0][1], _BATCH))(collate, samples)


def _seeded_decoded_collate(
    samples: list[tuple[Any, int]], seed: int, rank: int, collate: Callable
) -> dict[str, Any]:
    return {**_seeded_collate(samples, seed, rank, collate), "first_position": samples[0][1]}


def _no_target(_: Any) -> tuple:
    return ()


def resolve_augmentation(cfg: DictConfig, device: torch.device) -> str:
    """``per_image`` or ``batched`` for config key ``train.augmentation`` on ``device`` (auto:
    batched on CUDA)."""
    choice = cfg.train.augmentation
    if choice not in AUGMENTATION_PATHS:
        raise ValueError(
            f"config key 'train.augmentation' is {choice!r}; use one of "
            f"{', '.join(AUGMENTATION_PATHS)}"
        )
    if choice == "auto":
        return "batched" if device.type == "cuda" else "per_image"
    return choice


def _augmentation_kwargs(cfg: DictConfig) -> dict[str, Any]:
    c = cfg.crops
    return dict(
        global_crops_scale=c.global_crops_scale,
        local_crops_scale=c.local_crops_scale,
        local_crops_number=c.local_crops_number,
        global_crops_size=c.global_crops_size,
        local_crops_size=c.local_crops_size,
        global_crops_1_blur_p=c.global_crops_1_blur_p,
        global_crops_2_blur_p=c.global_crops_2_blur_p,
        local_crops_blur_p=c.local_crops_blur_p,
        global_crops_2_solarize_p=c.global_crops_2_solarize_p,
    )


def build_data_augmentation(cfg: DictConfig) -> DataAugmentationDINO:
    return DataAugmentationDINO(**_augmentation_kwargs(cfg))


def build_batched_data_augmentation(cfg: DictConfig) -> BatchedDataAugmentationDINO:
    return BatchedDataAugmentationDINO(**_augmentation_kwargs(cfg))


def build_collate_fn(
    cfg: DictConfig, dtype: torch.dtype = torch.float32, augmentation: str = "per_image"
) -> Callable[[list], dict[str, Any]]:
    """``collate_data_and_cast`` (``per_image``) or ``collate_decoded_and_mask`` (``batched``) with
    the official mask generator (at most half of the patches per block)."""
    grid = cfg.crops.global_crops_size // cfg.student.patch_size
    mask_generator = MaskingGenerator(input_size=(grid, grid), max_num_patches=0.5 * grid * grid)
    kwargs = dict(
        mask_ratio_tuple=tuple(cfg.ibot.mask_ratio_min_max),
        mask_probability=cfg.ibot.mask_sample_probability,
        n_tokens=grid * grid,
        mask_generator=mask_generator,
    )
    if augmentation == "batched":
        return partial(collate_decoded_and_mask, **kwargs)
    return partial(collate_data_and_cast, dtype=dtype, **kwargs)


def build_train_dataset(cfg: DictConfig, augmentation: str = "per_image") -> Dataset:
    """The training dataset of ``train.dataset_path`` (the one place to swap it, e.g. paired NCT
    data): augmented samples (``per_image``) or decoded uint8 images (``batched``)."""
    transform = DecodedImage() if augmentation == "batched" else build_data_augmentation(cfg)
    return make_dataset(
        dataset_str=cfg.train.dataset_path, transform=transform, target_transform=_no_target
    )


class BatchAugmenter:
    """A collated decoded batch -> the batch of ``collate_data_and_cast`` (keys, layout), on
    ``device``.

    Each batch's crop parameters come from a CPU generator seeded from ``(seed, rank, first stream
    position)``, so they do not depend on workers, device or where a previous run stopped.
    """

    def __init__(
        self,
        augmentation: BatchedDataAugmentationDINO,
        seed: int,
        rank: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.augmentation = augmentation
        self.seed, self.rank, self.device, self.dtype = seed, rank, device, dtype

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = dict(batch)
        position = int(batch.pop("first_position"))
        generator = torch.Generator().manual_seed(
            _stream_seed(self.seed, self.rank, position, _BATCH_CROPS)
        )
        sizes, offsets = batch.pop("image_sizes"), batch.pop("image_offsets")
        images = RaggedImages(batch.pop("images_flat"), sizes, offsets).to(
            self.device, non_blocking=True
        )
        paired = batch.pop("paired_images_flat", None)
        if paired is not None:
            paired = RaggedImages(paired, sizes, offsets).to(self.device, non_blocking=True)
        crops = self.augmentation(images, generator, paired)
        batch["collated_global_crops"] = crops["global_crops"].to(self.dtype)
        batch["collated_local_crops"] = crops["local_crops"].to(self.dtype)
        if paired is not None:
            batch["collated_global_crops_paired"] = crops["global_crops_paired"].to(self.dtype)
        return batch


class BatchedAugmentationLoader:
    """Iterates over training batches: decoded uint8 batches of ``loader``, augmented on the
    training device by ``augment`` (in the main process: the device may be a GPU)."""

    def __init__(self, loader: DataLoader, augment: BatchAugmenter) -> None:
        self.loader, self.augment = loader, augment

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            yield self.augment(batch)


def _collate_then_augment(
    samples: list[tuple[Any, int]], collate: Callable, augment: BatchAugmenter
) -> dict[str, Any]:
    return augment(collate(samples))


def build_train_data_loader(
    cfg: DictConfig,
    start_iteration: int,
    dataset: Dataset | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
    augment_in_loader: bool | None = None,
) -> DataLoader | BatchedAugmentationLoader:
    """Endless loader of collated batches for this rank, positioned after ``start_iteration``
    batches.

    ``device`` is the training device: the batched path (``train.augmentation``) augments there.
    A ``dataset`` passed in must yield what the chosen path expects (augmented or decoded samples).
    ``augment_in_loader`` (batched path): augment in the loader's collate (the workers) rather than
    in the main process; default: on the CPU only. Both give the same batches.
    """
    device = torch.device("cpu") if device is None else device
    augmentation = resolve_augmentation(cfg, device)
    dataset = build_train_dataset(cfg, augmentation) if dataset is None else dataset
    rank, batch_size = distributed.get_global_rank(), cfg.train.batch_size_per_gpu
    advance = start_iteration * batch_size
    sampler = ShardedInfiniteSampler(
        sample_count=len(dataset), shuffle=True, seed=cfg.train.seed, advance=advance
    )
    seeded = _seeded_decoded_collate if augmentation == "batched" else _seeded_collate
    collate = partial(
        seeded, seed=cfg.train.seed, rank=rank, collate=build_collate_fn(cfg, dtype, augmentation)
    )
    augment_in_main = None  # the batched augmentation, when it runs in the main process
    if augmentation == "batched":
        augment = BatchAugmenter(
            build_batched_data_augmentation(cfg), cfg.train.seed, rank, device, dtype
        )
        if augment_in_loader is None:
            # On a GPU, in the main process (where the device is); on the CPU, in the loader's
            # collate, i.e. in the workers when there are some (faster with one torch thread, not
            # with two on two cores: docs/benchmarks.md). Same batches either way.
            augment_in_loader = device.type == "cpu"
        if augment_in_loader:
            collate = partial(_collate_then_augment, collate=collate, augment=augment)
        else:
            augment_in_main = augment
    loader = DataLoader(
        PositionSeededDataset(dataset, cfg.train.seed, rank, seeded=augmentation == "per_image"),
        sampler=PositionedSampler(sampler, advance),
        batch_size=batch_size,
        num_workers=cfg.train.num_workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        persistent_workers=False,
        collate_fn=collate,
        # Its own generator: creating the iterator must not draw from the training RNG (stochastic
        # depth).
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    return loader if augment_in_main is None else BatchedAugmentationLoader(loader, augment_in_main)
