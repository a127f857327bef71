"""Tiny noisy image trees and tiny configs for the Neighbor2Neighbor tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from utils.config import DEMO_EXPERIMENT, load_experiment
from utils.noise import add_noise_uint8


@pytest.fixture(autouse=True, scope="session")
def single_thread_torch():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads spinning against other
    processes make tiny convolutions ~10x slower than a single thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A clean uint8 (H, W, 3) image of smooth gradients (something a denoiser can learn)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(3 * x + rng.uniform(0, 3)), np.cos(2 * y), x * y], axis=-1)
    return ((base - base.min()) / (np.ptp(base) + 1e-9) * 255).astype(np.uint8)


@pytest.fixture
def noisy_tree(tmp_path: Path) -> Path:
    """``noisy/train/<class>/*.png``: three 64x80 images and one 40x50 image (padded to the
    crop)."""
    root = tmp_path / "noisy"
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(64, 80), (64, 80), (70, 64), (40, 50)]):
        folder = root / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(add_noise_uint8(smooth_image(h, w, i), "gauss_50", rng)).save(
            folder / f"img{i}.png"
        )
    return root


def _tiny_config(train_root: Path, out_dir: Path, **extra: object):
    """The demo experiment with a tiny UNet, 64-px crops, 64-px validation and no workers."""
    overrides = {
        "n2n.train_root": train_root,
        "n2n.out_dir": out_dir,
        "n2n.n_feature": 8,
        "n2n.crop_size": 64,
        "n2n.batch_size": 2,
        "n2n.n_epoch": 5,
        "n2n.n_samples_per_epoch": 4,
        "n2n.val_photos": "[astronaut]",
        "n2n.val_size": 64,
        "n2n.workers": 0,
        "n2n.device": "cpu",
        **extra,
    }
    return load_experiment(DEMO_EXPERIMENT, [f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture
def tiny_config():
    """Factory ``tiny_config(train_root, out_dir, **overrides)`` → resolved experiment config."""
    return _tiny_config
