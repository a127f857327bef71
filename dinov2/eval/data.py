"""Evaluation datasets from DINOv2 dataset strings, with the protocol's transforms and optional
noise."""

from __future__ import annotations

from torch.utils.data import Dataset

from dinov2.data.loaders import make_dataset
from dinov2.data.transforms import (
    make_classification_eval_transform,
    make_classification_train_transform,
)
from dinov2.eval.features import ImageDataset

# Seeds of on-the-fly noise (the paper's retrieval seeds: 42 for the database, 100 for the queries).
TRAIN_NOISE_SEED = 42
VAL_NOISE_SEED = 100


def load_dataset(dataset_str: str) -> Dataset:
    """``make_dataset(dataset_str=…)`` yielding PIL images; a missing or stale index is a one-line
    ValueError."""
    try:
        return make_dataset(dataset_str=dataset_str)
    except (RuntimeError, FileNotFoundError) as e:  # DatasetIndexError names the fixing command
        raise ValueError(
            str(e).splitlines()[0] if str(e) else f"cannot open dataset {dataset_str}"
        ) from e


def eval_datasets(
    train_dataset_str: str,
    val_dataset_str: str,
    resize_size: int = 256,
    crop_size: int = 224,
    noise: str | None = None,
    train_augment: bool = True,
) -> tuple[ImageDataset, ImageDataset]:
    """``(train, val)`` datasets of transformed tensors.

    Train: RandomResizedCrop + flip when ``train_augment`` (protocol mode), else the eval transform
    (feature caching); val: Resize + CenterCrop. ``noise`` (a spec) is added on the fly to both
    splits.
    """
    eval_t = make_classification_eval_transform(resize_size=resize_size, crop_size=crop_size)
    train_t = make_classification_train_transform(crop_size=crop_size) if train_augment else eval_t
    train = ImageDataset(load_dataset(train_dataset_str), train_t, noise, TRAIN_NOISE_SEED)
    val = ImageDataset(load_dataset(val_dataset_str), eval_t, noise, VAL_NOISE_SEED)
    return train, val
