"""``ImageNet``: an indexed ImageFolder-style dataset with the official DINOv2 API.

Any root laid out as ``ROOT/{train,val}/<class>/**/<image>`` works (ImageNet-1k, ImageNet-100,
the embedded MNIST-5k, a noisy or denoised copy of any of them): sizes come from the index written
by ``process_metadata.py`` (see :mod:`dinov2.data.datasets.extra`), never from hard-coded counts.

Noise at load time (``noise=SPEC``, optional ``noise_seed=N``, default 42 as
``utils.generate_noise``): each clean image gets exactly the noise ``python -m utils.generate_noise
--noise SPEC --seed N`` writes for it (same per-image generator from the seed and the path relative
to the root, same uint8 arithmetic), so the pixels equal those of the noisy PNG tree, which then
need not exist.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from dinov2.data.datasets.extra import SPLIT_DIRS, default_extra, load_index
from utils.image_io import load_rgb_image
from utils.load_noise import DEFAULT_NOISE_SEED, noisy_pixels
from utils.noise import NoiseSpec, parse_noise_spec


class _Split(Enum):
    TRAIN = "train"
    VAL = "val"

    @property
    def dirname(self) -> str:
        return self.value

    @classmethod
    def parse(cls, split: str | _Split) -> _Split:
        """``TRAIN``/``VAL`` (any case) or a :class:`_Split`."""
        if isinstance(split, cls):
            return split
        try:
            return cls[str(split).upper()]
        except KeyError:
            raise ValueError(
                f"unknown split {split!r}; valid: {', '.join(s.name for s in cls)}"
            ) from None


class ImageNet(Dataset):
    """Images of one split as ``(PIL RGB image, class index)`` pairs, after optional transforms.

    ``transform`` maps the image, ``target_transform`` the target, ``transforms`` (official API)
    maps the pair and runs after them. Images are decoded by :func:`utils.image_io.load_rgb_image`
    (any format, 16-bit and CMYK included).
    """

    Split = _Split

    def __init__(
        self,
        *,
        split: str | _Split,
        root: str | os.PathLike,
        extra: str | os.PathLike | None = None,
        transforms: Callable | None = None,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        noise: str | NoiseSpec | None = None,
        noise_seed: int | str = DEFAULT_NOISE_SEED,
    ) -> None:
        self.noise = parse_noise_spec(noise) if noise else None
        try:
            self.noise_seed = int(noise_seed)
        except ValueError:
            raise ValueError(
                f"noise_seed={noise_seed!r} is not an integer; e.g. noise_seed=42"
            ) from None
        self._split = _Split.parse(split)
        self.root = Path(root)
        self._extra_root = Path(extra) if extra is not None else default_extra(self.root)
        self.transforms, self.transform, self.target_transform = (
            transforms,
            transform,
            target_transform,
        )
        entries, self._class_ids, self._class_names = load_index(
            self.root, self._extra_root, self._split.name
        )
        self._paths = entries["path"]
        self._targets = entries["class_index"].astype(np.int64)

    @property
    def split(self) -> _Split:
        return self._split

    def get_image_path(self, index: int) -> Path:
        """Path of image ``index`` on disk."""
        return self.root / SPLIT_DIRS[self._split.name] / self._paths[index].decode("utf-8")

    def get_image_rel_path(self, index: int) -> str:
        """POSIX path of image ``index`` relative to the root (``train/<class>/<name>``), as
        generate_noise sees it."""
        return posixpath.normpath(
            f"{SPLIT_DIRS[self._split.name]}/{self._paths[index].decode('utf-8')}"
        )

    def load_image(self, index: int) -> Image.Image:
        """Decoded RGB image ``index``, with the load-time noise when the dataset has a ``noise``
        spec."""
        if self.noise is None:
            return load_rgb_image(self.get_image_path(index))
        rel = self.get_image_rel_path(index)
        return Image.fromarray(noisy_pixels(self.root, rel, self.noise, self.noise_seed))

    def get_image_data(self, index: int) -> bytes:
        """The encoded bytes of image ``index`` (official API)."""
        return self.get_image_path(index).read_bytes()

    def get_target(self, index: int) -> int:
        return int(self._targets[index])

    def get_targets(self) -> np.ndarray:
        """Class index of every image, ``int64 [len(self)]``."""
        return self._targets

    def get_class_id(self, index: int) -> str:
        return str(self._class_ids[self._targets[index]])

    def get_class_name(self, index: int) -> str:
        return str(self._class_names[self._targets[index]])

    def get_class_ids(self) -> np.ndarray:
        return self._class_ids

    def get_class_names(self) -> np.ndarray:
        return self._class_names

    def __len__(self) -> int:
        return len(self._targets)

    def __getitem__(self, index: int) -> tuple[Image.Image | Any, int | Any]:
        image: Any = self.load_image(index)
        target: Any = self.get_target(index)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target
