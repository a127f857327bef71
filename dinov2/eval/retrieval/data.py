"""Revisited Oxford/Paris data in the standard layout: ``ROOT/<name>/gnd_<name>.pkl`` +
``ROOT/<name>/jpg/``.

The pickle holds ``{"imlist": [...], "qimlist": [...], "gnd": [{"bbx", "easy", "hard", "junk"},
...]}``; image ``i`` of the database is ``jpg/<imlist[i]>.jpg``, query ``q`` is
``jpg/<qimlist[q]>.jpg`` with its box ``bbx = [x1, y1, x2, y2]`` in pixels.

The pickle is read with a restricted unpickler (:func:`safe_load_gnd`): plain pickles can run any
code while loading, and a gnd file is data someone downloaded. Only the containers, strings and
numbers of the revisited files (and numpy arrays/scalars) are rebuilt; anything else is refused.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from utils.image_io import load_rgb_image
from utils.noise import NoiseSpec, add_noise_uint8, parse_noise_spec

DB_NOISE_SEED = 42  # the paper's seeds for on-the-fly noise
QUERY_NOISE_SEED = 100


# The globals a revisited gnd pickle may name: numpy arrays and scalars (numpy 1 and 2 module
# paths). dict, list, str, int, float, tuple, bool and None need no global.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class GndFileError(ValueError):
    """A ground-truth file that is not a revisited gnd pickle (one-line message naming it)."""


class _GndUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


def safe_load_gnd(path: Path) -> Any:
    """Unpickle ``path`` allowing only plain data and numpy arrays; :class:`GndFileError`
    otherwise."""
    data = path.read_bytes()
    try:
        return _GndUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        reason = str(e)
        if reason.startswith("it refers to"):
            raise GndFileError(
                f"{path} is not plain ground-truth data ({reason}); refusing to load it: "
                "a gnd file holds only "
                "dicts, lists, strings and numbers — get it again from the revisited benchmark"
            ) from None
        raise GndFileError(
            f"{path} is not a pickle file ({reason}); expected a revisited gnd_<dataset>.pkl"
        ) from None
    except (
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
    ) as e:
        raise GndFileError(
            f"{path} is truncated or not a gnd pickle ({type(e).__name__}); get it again"
        ) from None


def check_gnd(cfg: Any, pkl: Path) -> None:
    """The structure the evaluation relies on; the first problem is a :class:`GndFileError` naming
    the file."""
    if not isinstance(cfg, dict):
        raise GndFileError(
            f"{pkl} holds a {type(cfg).__name__}, not the dict of a revisited gnd file"
        )
    missing_keys = [k for k in ("imlist", "qimlist", "gnd") if k not in cfg]
    if missing_keys:
        raise GndFileError(
            f"{pkl} lacks the key {missing_keys[0]!r}; it is not a revisited gnd file"
        )
    for key in ("imlist", "qimlist"):
        names = cfg[key]
        if (
            not isinstance(names, list | tuple)
            or not names
            or not all(isinstance(n, str) for n in names)
        ):
            raise GndFileError(f"{pkl}: {key!r} must be a non-empty list of image names")
    gnd = cfg["gnd"]
    if not isinstance(gnd, list | tuple) or len(gnd) < len(cfg["qimlist"]):
        n = len(gnd) if isinstance(gnd, list | tuple) else 0
        raise GndFileError(
            f"{pkl}: 'gnd' has {n} entries for {len(cfg['qimlist'])} queries (qimlist); "
            "one per query"
        )
    for q, entry in enumerate(gnd[: len(cfg["qimlist"])]):
        lacking = [
            k for k in ("easy", "hard", "junk") if not isinstance(entry, dict) or k not in entry
        ]
        if lacking:
            raise GndFileError(
                f"{pkl}: gnd entry {q} (query {cfg['qimlist'][q]}) lacks its {lacking[0]!r} list"
            )


def load_gnd(data_root: str | os.PathLike, name: str) -> tuple[dict, Path]:
    """``(cfg, image folder)`` of dataset ``name``; a missing pickle or image is a one-line
    error."""
    folder = Path(data_root) / name
    pkl = folder / f"gnd_{name}.pkl"
    if not pkl.is_file():
        hint = (
            "build it: python -m dinov2.eval.retrieval.mini_set ROOT"
            if name == "mini"
            else (f"download gnd_{name}.pkl and the jpg/ folder (revisitop) into {folder}")
        )
        raise FileNotFoundError(f"{pkl} not found; {hint}")
    cfg = safe_load_gnd(pkl)
    check_gnd(cfg, pkl)
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
    ``numpy.random.default_rng([noise_seed, i])``, denoise (``denoiser``: uint8 array → uint8
    array), then ``transform``.
    """

    def __init__(
        self,
        folder: Path,
        names: list[str],
        transform: Callable,
        boxes: list | None = None,
        noise: str | NoiseSpec | None = None,
        noise_seed: int = DB_NOISE_SEED,
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
