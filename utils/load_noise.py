"""Noise at load time: the pixels ``utils.generate_noise`` writes, computed when an image is read.

A noisy ImageNet-1k copy is ~0.7 TB of PNG per noise level. Every stage that reads a noisy tree can
instead read the clean tree and add, per image, exactly the noise that ``generate_noise`` would have
written: the generator of an image derives from the global seed and the image's POSIX path relative
to the clean root (:func:`image_rng`), and the arithmetic is :func:`utils.noise.add_noise_uint8`, so
the pixels are bit-identical to those of the noisy PNG and the copy need not exist.

Experiments switch every stage at once with ``noise.at_load: true`` (:func:`noisy_tree_source`).

Order: Neighbor2Neighbor training and the denoiser list clean files in the order of their noisy
names (:func:`noisy_rel_path`, all ``.png``). The DINOv2 index of a clean root sorts the clean
names; it differs from the noisy tree's index only where one file's stem is another's followed by a
dot and more (``a.jpg`` / ``a.k.png``), which changes the data order of pretraining, not the pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.image_io import load_rgb_uint8
from utils.noise import NoiseSpec, add_noise_uint8, parse_noise_spec

log = logging.getLogger(__name__)
DEFAULT_NOISE_SEED = 42  # utils.generate_noise's default --seed


def image_rng(seed: int, rel_path: str) -> np.random.Generator:
    """Generator of one image, from the global seed and its POSIX path relative to the source
    root."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def noisy_rel_path(rel_path: str) -> str:
    """Path of the noisy copy of a source image: same folders and stem, ``.png`` extension."""
    return str(Path(rel_path).with_suffix(".png").as_posix())


def noisy_pixels(
    src: str | os.PathLike, rel_path: str, spec: str | NoiseSpec, seed: int
) -> np.ndarray:
    """uint8 (H, W, 3) pixels of the noisy copy of ``src/rel_path`` that generate_noise writes."""
    clean = load_rgb_uint8(os.path.join(src, rel_path))
    return add_noise_uint8(clean, spec, image_rng(seed, rel_path))


@dataclass(frozen=True)
class LoadTimeNoise:
    """Noise added to the images below the clean tree ``root`` as they are read.

    ``root`` is the folder generate_noise's ``--src`` would be: per-image generators key on the
    paths relative to it, so a reader of a sub-folder (``root/train``) gets the same pixels.
    """

    spec: str
    seed: int
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", parse_noise_spec(self.spec).tag)
        object.__setattr__(self, "root", Path(self.root))

    def pixels(self, path: str | os.PathLike) -> np.ndarray:
        """uint8 (H, W, 3) noisy pixels of ``path``, a file below :attr:`root`."""
        rel = Path(os.path.relpath(path, self.root)).as_posix()
        if rel.startswith("../"):
            raise ValueError(
                f"{path} is not below {self.root}, the clean root of the load-time noise"
            )
        return noisy_pixels(self.root, rel, self.spec, self.seed)

    def dataset_options(self) -> str:
        """The DINOv2 dataset-string options that add this noise (``:noise=SPEC:noise_seed=N``)."""
        return f":noise={self.spec}:noise_seed={self.seed}"


def noisy_tree_source(cfg, path: str | os.PathLike) -> tuple[Path, LoadTimeNoise | None]:
    """Where a stage reads ``path``, a folder of the experiment ``cfg``'s noisy tree or another one.

    With ``noise.at_load`` off, or a ``path`` outside ``data.noisy_root``: ``(path, None)``. With
    it on, ``data.noisy_root/<rel>`` is read as ``data.clean_root/<rel>`` plus the noise
    ``noise.spec`` / ``noise.seed`` at load time: ``(clean_root/<rel>, LoadTimeNoise)``.
    """
    path = Path(path)
    if not cfg.noise.at_load:
        return path, None
    noisy, clean = Path(cfg.data.noisy_root), Path(cfg.data.clean_root)
    try:
        rel = path.relative_to(noisy)
    except ValueError:
        log.info("noise.at_load: %s is not below data.noisy_root %s; read as it is", path, noisy)
        return path, None
    return clean / rel, LoadTimeNoise(cfg.noise.spec, int(cfg.noise.seed), clean)
