"""Revisited Oxford/Paris data in the standard layout: ``ROOT/<name>/gnd_<name>.pkl`` + ``ROOT/<name>/jpg/``.

The pickle holds ``{"imlist": [...], "qimlist": [...], "gnd": [{"bbx", "easy", "hard", "junk"}, ...]}``;
image ``i`` of the database is ``jpg/<imlist[i]>.jpg``, query ``q`` is ``jpg/<qimlist[q]>.jpg``
with its box ``bbx = [x1, y1, x2, y2]`` in pixels.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from utils.image_io import load_rgb_image
from utils.noise import NoiseSpec, add_noise_uint8, parse_noise_spec

DB_NOISE_SEED = 42  # the paper's seeds for on-the-fly noise
QUERY_NOISE_SEED = 100


def load_gnd(data_root: str | os.PathLike, name: str) -> tuple[dict, Path]:
    """``(cfg, image folder)`` of dataset ``name``; a missing pickle or image is a one-line error."""
    folder = Path(data_root) / name
    pkl = folder / f"gnd_{name}.pkl"
    if not pkl.is_file():
        hint = "build it: python -m dinov2.eval.retrieval.mini_set ROOT" if name == "mini" else (
            f"download gnd_{name}.pkl and the jpg/ folder (revisitop) into {folder}")
        raise FileNotFoundError(f"{pkl} not found; {hint}")
    with open(pkl, "rb") as f:
        cfg = pickle.load(f)
    missing_keys = [k for k in ("imlist", "qimlist", "gnd") if k not in cfg]
    if missing_keys:
        raise ValueError(f"{pkl} lacks the key {missing_keys[0]!r}; it is not a revisited gnd file")
    jpg = folder / "jpg"
    for image_name in (cfg["imlist"][0], cfg["qimlist"][0], cfg["imlist"][-1]):
        if not (jpg / f"{image_name}.jpg").is_file():
            raise FileNotFoundError(
                f"{pkl} lists {image_name}.jpg but {jpg / (image_name + '.jpg')} is missing; "
                f"put the dataset's images in {jpg}"
            )
    return cfg, jpg


class RetrievalImages(Dataset):
    """Database or query images → ``(transform(image), index)``.

    Per image: load RGB, crop to ``boxes[i]`` (queries with ``--crop-queries``), add noise with
    ``numpy.random.default_rng([noise_seed, i])``, denoise (``denoiser``: uint8 array → uint8 array),
    then ``transform``.
    """

    def __init__(
        self, folder: Path, names: list[str], transform: Callable, boxes: list | None = None,
        noise: str | NoiseSpec | None = None, noise_seed: int = DB_NOISE_SEED,
        denoiser: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.paths = [folder / f"{n}.jpg" for n in names]
        self.transform = transform
        self.boxes = boxes
        self.noise = parse_noise_spec(noise) if noise else None
        self.noise_seed = noise_seed
        self.denoiser = denoiser

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        """The image as the backbone sees it before the transform (cropped, noisy, denoised)."""
        image = load_rgb_image(self.paths[index])
        if self.boxes is not None:
            image = image.crop(tuple(int(round(v)) for v in self.boxes[index]))
        if self.noise is None and self.denoiser is None:
            return image
        arr = np.asarray(image)
        if self.noise is not None:
            arr = add_noise_uint8(arr, self.noise, np.random.default_rng([self.noise_seed, index]))
        if self.denoiser is not None:
            arr = self.denoiser(arr)
        return Image.fromarray(arr)

    def __getitem__(self, index: int):
        return self.transform(self.load(index)), index
