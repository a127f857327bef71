"""Digits for the toy experiment: the embedded MNIST-5k (default) or a local full MNIST.

Both sources give float32 images in [0, 1] of shape ``[N, 28, 28]`` and int64 labels ``[N]``. Noise
is drawn on the fly (``noisy_copy``, a fresh draw at every call, as the authors' toy adds it at
every load), with ``utils.noise.add_noise`` and the spec ``gauss_102`` (std 102/255 = 0.4).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from utils.embedded import mnist5k_arrays, mnist5k_split
from utils.noise import NoiseSpec, add_noise

log = logging.getLogger(__name__)


@dataclass
class Digits:
    """A train/test split: ``*_x`` float32 ``[N, 28, 28]`` in [0, 1], ``*_y`` int64 ``[N]``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str

    def to(self, device: torch.device | str) -> Digits:
        return Digits(
            *(t.to(device) for t in (self.train_x, self.train_y, self.test_x, self.test_y)),
            self.source,
        )

    def subset(self, n_train: int, n_test: int) -> Digits:
        """``n_train`` / ``n_test`` digits with the classes balanced (for quick tests and smoke
        runs)."""
        tr, te = _interleaved(self.train_y)[:n_train], _interleaved(self.test_y)[:n_test]
        return Digits(
            self.train_x[tr],
            self.train_y[tr],
            self.test_x[te],
            self.test_y[te],
            f"{self.source}[{n_train}/{n_test}]",
        )


def _interleaved(labels: torch.Tensor) -> torch.Tensor:
    """Indices ordering the digits class by class in turn (the embedded digits are sorted by
    class)."""
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    starts = torch.searchsorted(sorted_labels, sorted_labels)  # first position of each one's class
    rank_in_class = torch.arange(len(labels), device=labels.device) - starts
    return order[
        torch.argsort(rank_in_class * (int(labels.max()) + 1) + sorted_labels, stable=True)
    ]


def _to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(images), dtype=torch.uint8).float().div_(255.0)


@functools.lru_cache(maxsize=1)
def _mnist5k() -> Digits:
    # parsing the embedded digits takes seconds; the tensors are never modified in place
    images, labels = mnist5k_arrays()
    train_idx, test_idx = mnist5k_split(labels)
    return Digits(
        _to_float(images[train_idx]),
        torch.from_numpy(labels[train_idx]),
        _to_float(images[test_idx]),
        torch.from_numpy(labels[test_idx]),
        "mnist5k",
    )


def load_digits(mnist_root: str | os.PathLike | None = None) -> Digits:
    """MNIST-5k (4000 train / 1000 test, stratified, fixed) or, with ``mnist_root``, the full MNIST.

    ``mnist_root`` is a torchvision layout (``<root>/MNIST/raw/*-ubyte``); nothing is downloaded.
    """
    if mnist_root is None:
        return _mnist5k()
    from torchvision.datasets import MNIST

    try:
        train = MNIST(str(mnist_root), train=True, download=False)
        test = MNIST(str(mnist_root), train=False, download=False)
    except RuntimeError as e:
        raise FileNotFoundError(
            f"mnist_root {mnist_root}: no MNIST found ({e}); expected torchvision layout "
            f"<root>/MNIST/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte, "
            "or mnist_root=null to use the embedded MNIST-5k"
        ) from None
    log.info("full MNIST from %s: %d train, %d test", mnist_root, len(train), len(test))
    return Digits(
        _to_float(train.data),
        train.targets.long(),
        _to_float(test.data),
        test.targets.long(),
        "mnist",
    )


def noise_spec(noise_std: float) -> NoiseSpec:
    """The additive Gaussian spec whose std is ``noise_std`` in [0, 1] units (0.4 →
    ``gauss_102``)."""
    return NoiseSpec("gauss", noise_std * 255.0)


def noisy_copy(x: torch.Tensor, noise_std: float, generator: torch.Generator) -> torch.Tensor:
    """``clip(x + N(0, noise_std²), 0, 1)`` drawn on the CPU generator (same digits on any
    device)."""
    return add_noise(x.cpu(), noise_spec(noise_std), generator).to(x.device)
