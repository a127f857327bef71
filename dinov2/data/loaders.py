"""Datasets from DINOv2 dataset strings:
``ImageNet:split=TRAIN:root=/data/in100:extra=/data/in100/extra``.

The string is the dataset class name followed by ``:key=value`` pairs; ``split`` (TRAIN or VAL, any
case) and ``root`` are required, ``extra`` defaults to ``ROOT/extra``. Paths cannot contain ``:``.
``PairedImageNet`` (noisy/denoised pairs for NCT, :mod:`dinov2.data.paired`) also takes
``paired_root``. ``noise=SPEC`` (and ``noise_seed=N``, default 42) adds at load time the noise
``utils.generate_noise`` would have written (:class:`dinov2.data.datasets.ImageNet`): ``root`` is
then the clean tree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dinov2.data.datasets import ImageNet
from dinov2.data.paired import PairedImageNet
from utils.noise import parse_noise_spec

DATASETS: dict[str, type] = {"ImageNet": ImageNet, "PairedImageNet": PairedImageNet}
_KEYS = {"split", "root", "extra", "noise", "noise_seed"}
_DATASET_KEYS = {"PairedImageNet": {"paired_root"}}  # keys of one dataset class only (NCT pairs)
_REQUIRED = ("split", "root")


def _parse_dataset_str(dataset_str: str) -> tuple[type, dict[str, Any]]:
    """``(dataset class, keyword arguments)`` of a dataset string; a bad string raises
    ValueError."""
    name, *tokens = dataset_str.split(":")
    if name not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r} in {dataset_str!r}; valid: {', '.join(DATASETS)}"
        )
    kwargs: dict[str, Any] = {}
    valid_keys = _KEYS | _DATASET_KEYS.get(name, set())
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not value:
            raise ValueError(
                f"bad token {token!r} in dataset string {dataset_str!r}; expected key=value"
            )
        if key not in valid_keys:
            raise ValueError(
                f"unknown key {key!r} in dataset string {dataset_str!r}; "
                f"valid: {', '.join(sorted(valid_keys))}"
            )
        if key in kwargs:
            raise ValueError(f"key {key!r} given twice in dataset string {dataset_str!r}")
        kwargs[key] = value
    missing = [k for k in _REQUIRED if k not in kwargs]
    if missing:
        raise ValueError(
            f"dataset string {dataset_str!r} lacks {missing[0]}=...; e.g. "
            f"{name}:split=TRAIN:root=/data"
        )
    kwargs["split"] = ImageNet.Split.parse(kwargs["split"])
    if "noise" in kwargs:
        try:
            parse_noise_spec(kwargs["noise"])
        except ValueError as e:
            raise ValueError(f"key noise in dataset string {dataset_str!r}: {e}") from None
    return DATASETS[name], kwargs


def make_dataset(
    *,
    dataset_str: str,
    transform: Callable | None = None,
    target_transform: Callable | None = None,
) -> ImageNet:
    """The dataset described by ``dataset_str`` (official DINOv2 signature)."""
    class_, kwargs = _parse_dataset_str(dataset_str)
    return class_(transform=transform, target_transform=target_transform, **kwargs)
