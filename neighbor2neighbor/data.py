"""Training crops of a noisy image tree (or of a clean one plus the noise at load time), and the
noisy validation photos with a known clean reference.

Randomness never comes from global state: the crop of sample ``i`` in epoch ``e`` and the data order
of epoch ``e`` derive from ``(seed, e, i)``, so a resumed run sees exactly the crops and order that
an uninterrupted one would, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm

from utils.image_io import is_image_file, load_rgb_uint8
from utils.load_noise import LoadTimeNoise, noisy_rel_path
from utils.noise import add_noise_uint8, parse_noise_spec

log = logging.getLogger(__name__)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence mixing: nearby inputs give unrelated
    seeds)."""
    return int(
        np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every image file below ``root``, sorted by relative path (hidden files and folders
    skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if is_image_file(f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def pad_to_at_least(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad an (H, W, C) image at the bottom/right so both sides are ≥ ``size``.

    Reflection (not zeros) keeps the noise statistics of the padded area close to the image's, so
    the self-supervised loss does not learn to reproduce a flat border; numpy reflects repeatedly
    when the pad is larger than the image.
    """
    pad_h, pad_w = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image
    return np.pad(
        image,
        ((0, pad_h), (0, pad_w), (0, 0)),
        mode="reflect" if min(image.shape[:2]) > 1 else "edge",
    )


@dataclass(frozen=True)
class TrainingSelection:
    """Which images below ``n2n.train_root`` the denoiser trains on (the reference's data
    selection).

    ``side_range`` ``(min, max)``: keep only images whose width and height are both within it, in
    pixels (the reference drops the others rather than padding them); None keeps every image.
    ``images_per_class`` > 0: then a fixed random subset of that many images per class folder (the
    first folder level below the root), drawn with ``subset_seed`` (reference ImageNet-1k: 100, 42).
    """

    side_range: tuple[int, int] | None = None
    images_per_class: int = 0
    subset_seed: int = 42

    @property
    def active(self) -> bool:
        return self.side_range is not None or self.images_per_class > 0

    def settings(self) -> dict[str, object]:
        """The selection as a settings-record entry; empty when every image is used (records stay as
        before)."""
        if not self.active:
            return {}
        side_range = list(self.side_range) if self.side_range else None
        return {
            "n2n.training_images": {
                "side_range": side_range,
                "images_per_class": self.images_per_class,
                "subset_seed": self.subset_seed,
            }
        }


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header (the pixels are not decoded)."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"cannot read the image size of {path}: {e}") from None


def _class_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else ""


def select_images(files: Sequence[Path], root: Path, selection: TrainingSelection) -> list[Path]:
    """The files (sorted, as :func:`list_images` gives them) that ``selection`` keeps;
    deterministic.

    A class's subset depends only on ``subset_seed``, the class name and that class's files, so
    adding or removing another class never changes it.
    """
    kept = list(files)
    if selection.side_range is not None:
        low, high = selection.side_range
        sizes = (
            image_size(f)
            for f in tqdm(kept, desc="image sizes", unit="img", leave=False, mininterval=5)
        )
        kept = [f for f, (w, h) in zip(kept, sizes) if low <= w <= high and low <= h <= high]
    if selection.images_per_class > 0:
        by_class: dict[str, list[Path]] = {}
        for f in kept:
            by_class.setdefault(_class_of(f, root), []).append(f)
        kept = []
        for name in sorted(by_class):
            members = by_class[name]
            rng = np.random.default_rng(
                derived_seed(selection.subset_seed, zlib.crc32(name.encode()))
            )
            n = min(selection.images_per_class, len(members))
            kept.extend(members[i] for i in sorted(rng.choice(len(members), size=n, replace=False)))
    return kept


class NoisyCropDataset(Dataset):
    """Random ``crop_size`` crops of the training images below ``root``: item → float32 (3, S, S) in
    [0, 1].

    ``selection`` (default: every image) restricts them as the reference does; see
    :class:`TrainingSelection`. ``noise``: ``root`` holds clean images and each gets, as it is read,
    the noise ``utils.generate_noise`` writes for it (:class:`utils.load_noise.LoadTimeNoise`), so
    the crops equal those of the noisy tree without it on disk.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        crop_size: int = 256,
        seed: int = 0,
        selection: TrainingSelection | None = None,
        noise: LoadTimeNoise | None = None,
    ) -> None:
        self.root, self.noise = Path(root), noise
        self.files = list_images(root)
        if noise is not None:  # the order of the noisy tree's file names (all .png)
            self.files.sort(key=lambda p: noisy_rel_path(p.relative_to(self.root).as_posix()))
        if not self.files:
            raise FileNotFoundError(f"no image files below {self.root} (n2n.train_root)")
        selection = selection or TrainingSelection()
        if selection.active:
            n_found = len(self.files)
            self.files = select_images(self.files, self.root, selection)
            if not self.files:
                low, high = selection.side_range or (0, 0)
                raise ValueError(
                    f"n2n.size_filter: none of the {n_found} images below {self.root} has both "
                    f"sides within {low}-{high} px (n2n.min_side/n2n.max_side); set "
                    "n2n.size_filter: off to train on every image"
                )
            log.info(
                "training on %d of %d images below %s (%s)",
                len(self.files),
                n_found,
                self.root,
                selection,
            )
        self.crop_size, self.seed, self.epoch = crop_size, seed, 0
        log.info("%d training images below %s", len(self.files), self.root)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        # The sampler yields (index, draw) so that a file drawn twice in an epoch gets two crops.
        index, draw = index if isinstance(index, tuple) else (index, 0)
        path = self.files[index]
        pixels = load_rgb_uint8(path) if self.noise is None else self.noise.pixels(path)
        image = pad_to_at_least(pixels, self.crop_size)
        rng = np.random.default_rng(derived_seed(self.seed, self.epoch, index, draw))
        top = int(rng.integers(0, image.shape[0] - self.crop_size + 1))
        left = int(rng.integers(0, image.shape[1] - self.crop_size + 1))
        crop = image[top : top + self.crop_size, left : left + self.crop_size]
        return torch.from_numpy(np.array(crop)).permute(2, 0, 1).float().div_(255.0)


class EpochSampler(Sampler):
    """``n_samples`` items per epoch: concatenated random permutations seeded by ``(seed, epoch,
    k)``."""

    def __init__(self, n_items: int, n_samples: int = 0, seed: int = 0) -> None:
        self.n_items, self.seed, self.epoch = n_items, seed, 0
        self.n_samples = n_samples if n_samples > 0 else n_items

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order: list[tuple[int, int]] = []
        draw = 0
        while len(order) < self.n_samples:
            gen = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, draw))
            order.extend((int(i), draw) for i in torch.randperm(self.n_items, generator=gen))
            draw += 1
        return iter(order[: self.n_samples])


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` × ``size`` region (each side clipped to the image); ``size`` 0 = whole
    image."""
    if size <= 0:
        return image
    h, w = min(size, image.shape[0]), min(size, image.shape[1])
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[top : top + h, left : left + w]


def clean_photo(name: str) -> np.ndarray:
    """A colour photo bundled with scikit-image (``skimage.data.<name>``) as uint8 (H, W, 3)."""
    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(
            f"n2n.val_photos: skimage.data has no photo {name!r} "
            "(e.g. astronaut, coffee, chelsea, rocket)"
        )
    image = np.asarray(loader())
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"n2n.val_photos: skimage.data.{name} is not an 8-bit RGB photo")
    return image


def noisy_photos(
    names: Sequence[str], spec: str, seed: int, size: int = 0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, clean, noisy)`` uint8 (H, W, 3) pairs: centre crops noised with ``spec`` like the
    dataset.

    The noise is quantised like the noisy dataset (``utils.noise.add_noise_uint8``); photo ``i``
    uses the generator ``(seed, i)``, so the set is identical in every epoch and every run.
    """
    spec = parse_noise_spec(spec)
    out = []
    for i, name in enumerate(names):
        clean = np.ascontiguousarray(centre_crop(clean_photo(name), size))
        noisy = add_noise_uint8(clean, spec, np.random.default_rng(derived_seed(seed, i)))
        out.append((name, clean, noisy))
    return out


SIZE_FILTER_MODES = ("auto", "on", "off")
REFERENCE_CROP = 256  # the reference's training crop; `size_filter: auto` is on for it


def training_selection(
    size_filter: str,
    min_side: int,
    max_side: int,
    crop_size: int,
    images_per_class: int = 0,
    subset_seed: int = 42,
) -> TrainingSelection:
    """The :class:`TrainingSelection` of the ``n2n.*`` keys (``size_filter``: auto | on | off).

    ``auto`` applies the size filter only with the reference's 256-pixel crops, so small-image
    experiments (the demo's 28-pixel digits, cropped to 64 after padding) keep every image.
    """
    if size_filter not in SIZE_FILTER_MODES:
        raise ValueError(
            f"config key 'n2n.size_filter' must be one of {SIZE_FILTER_MODES}, got {size_filter!r}"
        )
    if not 0 < min_side <= max_side:
        raise ValueError(
            "config keys 'n2n.min_side'/'n2n.max_side' must satisfy 0 < min_side <= max_side, "
            f"got {min_side}/{max_side}"
        )
    if images_per_class < 0:
        raise ValueError(
            "config key 'n2n.images_per_class' must be >= 0 (0 = every image), "
            f"got {images_per_class}"
        )
    on = size_filter == "on" or (size_filter == "auto" and crop_size == REFERENCE_CROP)
    return TrainingSelection((min_side, max_side) if on else None, images_per_class, subset_seed)
