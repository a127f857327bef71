"""``PairedImageNet``: each noisy image with its denoised counterpart, for the NCT anchor
regularizer.

Dataset string: ``PairedImageNet:split=TRAIN:root=NOISY:paired_root=DENOISED[:extra=NOISY/extra]``.
The index (``extra``) is the noisy root's; the denoised image of ``ROOT/train/<rel>.<ext>`` is
``PAIRED_ROOT/train/<rel>.<any image ext>`` (extension-agnostic: the denoiser writes ``.png`` for a
``.JPEG`` input). Every pair is checked when the dataset is built, i.e. before the first training
step: a missing denoised image or one whose size differs from its noisy image stops the run with a
:class:`PairedDatasetError` that lists the first few paths and the count.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from dinov2.data.datasets.extra import SPLIT_DIRS
from dinov2.data.datasets.image_net import DEFAULT_NOISE_SEED, ImageNet
from utils.image_io import is_image_file, load_rgb_image

logger = logging.getLogger("dinov2")

N_LISTED = 5  # paths quoted in the error message
SIZE_CHECK_THREADS, SIZE_CHECK_CHUNK = 8, 4096  # image-header reads are I/O-bound


class PairedDatasetError(ValueError):
    """Missing or mismatched denoised images; the message lists the first few and the count."""


def _stem_map(split_dir: Path) -> dict[str, str]:
    """``{relative path without extension: relative path}`` of every image below ``split_dir``."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(split_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if is_image_file(name):
                rel = os.path.relpath(os.path.join(dirpath, name), split_dir)
                found.setdefault(os.path.splitext(rel)[0], rel)
    return found


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:  # reads the header only
        return im.size


class PairedImageNet(ImageNet):
    """``(transform(noisy, paired_image=denoised), target)``; without ``transform``: ``((noisy,
    denoised), target)``.

    ``transform`` is called with the denoised image as ``paired_image`` (see
    :class:`dinov2.data.DataAugmentationDINO`), so the two global crops of both versions share every
    augmentation parameter. ``check_sizes`` (default on) also compares image sizes (headers only).
    """

    def __init__(
        self,
        *,
        split: str,
        root: str | os.PathLike,
        paired_root: str | os.PathLike | None = None,
        extra: str | os.PathLike | None = None,
        transforms: Callable | None = None,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        check_sizes: bool = True,
        noise: str | None = None,
        noise_seed: int | str = DEFAULT_NOISE_SEED,
    ) -> None:
        if not paired_root:
            raise ValueError(
                "PairedImageNet needs paired_root=DENOISED_ROOT, e.g. "
                "PairedImageNet:split=TRAIN:root=NOISY:paired_root=DENOISED"
            )
        super().__init__(
            split=split,
            root=root,
            extra=extra,
            transforms=transforms,
            transform=transform,
            target_transform=target_transform,
            noise=noise,
            noise_seed=noise_seed,
        )
        self.paired_root = Path(paired_root)
        self._paired_paths = self._match_pairs(check_sizes)

    def _match_pairs(self, check_sizes: bool) -> list[str]:
        """Relative paths (below ``paired_root/<split>``) of the denoised images, in index order."""
        split_dir = self.paired_root / SPLIT_DIRS[self.split.name]
        if not split_dir.is_dir():
            raise PairedDatasetError(
                f"paired (denoised) folder {split_dir} does not exist; denoise the noisy dataset "
                f"{self.root} first (python -m neighbor2neighbor.denoise) or fix paired_root"
            )
        by_stem = _stem_map(split_dir)
        paired: list[str] = []
        missing: list[str] = []
        for index in range(len(self)):
            rel = self._paths[index].decode("utf-8")
            match = by_stem.get(os.path.splitext(rel)[0])
            if match is None:
                missing.append(rel)
            paired.append(match or "")
        mismatched = self._size_mismatches(split_dir, paired) if check_sizes and not missing else []
        if missing or mismatched:
            raise PairedDatasetError(self._problem_message(split_dir, missing, mismatched))
        logger.info(
            "paired dataset: %d noisy/denoised pairs (%s, %s)",
            len(paired),
            self.root,
            self.paired_root,
        )
        return paired

    def _size_mismatches(self, split_dir: Path, paired: list[str]) -> list[str]:
        """``"<rel> (WxH vs WxH)"`` for every pair of different sizes; headers read by a thread pool
        (the check is I/O-bound: ImageNet-1k means 2.5 million header reads before training
        starts)."""

        def check(start: int) -> list[str]:
            found = []
            for index in range(start, min(start + SIZE_CHECK_CHUNK, len(self))):
                size, paired_size = (
                    _image_size(self.get_image_path(index)),
                    _image_size(split_dir / paired[index]),
                )
                if size != paired_size:
                    rel = self._paths[index].decode("utf-8")
                    found.append(
                        f"{rel} ({size[0]}x{size[1]} vs {paired_size[0]}x{paired_size[1]})"
                    )
            return found

        starts = range(0, len(self), SIZE_CHECK_CHUNK)  # chunks: not one future per image
        with ThreadPoolExecutor(max_workers=SIZE_CHECK_THREADS) as pool:
            chunks = tqdm(
                pool.map(check, starts),
                total=len(starts),
                desc="checking pair sizes",
                disable=len(starts) < 4,
            )
            return [line for chunk in chunks for line in chunk]

    def _problem_message(self, split_dir: Path, missing: list[str], mismatched: list[str]) -> str:
        parts = []
        if missing:
            parts.append(
                f"{len(missing)} noisy images have no denoised counterpart in {split_dir}, e.g. "
                + ", ".join(missing[:N_LISTED])
            )
        if mismatched:
            parts.append(
                f"{len(mismatched)} pairs differ in size, e.g. " + ", ".join(mismatched[:N_LISTED])
            )
        return (
            "; ".join(parts)
            + f" (noisy root {self.root}). Re-run the denoising stage on the whole noisy tree "
            "(python -m neighbor2neighbor.denoise) so that every image "
            "has a denoised copy of the same size"
        )

    def get_paired_image_path(self, index: int) -> Path:
        """Path of the denoised counterpart of image ``index``."""
        return self.paired_root / SPLIT_DIRS[self.split.name] / self._paired_paths[index]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image: Any = self.load_image(
            index
        )  # with noise=SPEC: the clean image plus its load-time noise
        paired_image = load_rgb_image(self.get_paired_image_path(index))
        target: Any = self.get_target(index)
        image = (
            (image, paired_image)
            if self.transform is None
            else self.transform(image, paired_image=paired_image)
        )
        if self.target_transform is not None:
            target = self.target_transform(target)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
