"""Fixtures of the training tests: a generated 32x32 ImageFolder tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/class{0,1}/*.png``: 16 random 36x36 RGB images, indexed like process_metadata.py
    does."""
    from dinov2.data.datasets import build_index

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c in range(2):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(
                folder / f"{i}.png"
            )
    build_index(root)
    return root
