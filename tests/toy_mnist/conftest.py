"""Fixtures of the toy-experiment tests: the embedded digits, a small MNIST on disk, a tiny
protocol."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from toy_mnist.data import Digits, load_digits

# a protocol of a few steps, epochs taken as given (no step matching)
TINY_ARGS = [
    "epoch_scale=1",
    "protocol.batch_size=64",
    "protocol.clean_epochs=2",
    "protocol.switch_epoch=1",
    "protocol.noisy_epochs=1",
    "protocol.curriculum_epochs=1",
    "protocol.probe_epochs=1",
]


@pytest.fixture(scope="session")
def digits() -> Digits:
    """MNIST-5k as float tensors (4000 train / 1000 test)."""
    return load_digits()


@pytest.fixture
def tiny_args() -> list[str]:
    return list(TINY_ARGS)


@pytest.fixture
def usage_error(capsys: pytest.CaptureFixture[str]) -> Callable[[Callable, list[str]], str]:
    """``usage_error(main, argv)``: runs a command, checks that it exits 2 with one ``error:`` line
    on stderr (the last one), and returns that line."""

    def run(main: Callable, argv: list[str]) -> str:
        capsys.readouterr()
        assert main(argv) == 2
        lines = capsys.readouterr().err.splitlines()  # progress bars may come first
        assert lines[-1].startswith("error: ") and sum("error" in ln for ln in lines) == 1, lines
        return lines[-1]

    return run


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0, 0, uint8 code 8, n_dims), big-endian int32 dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}i", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(digits: Digits, tmp_path: Path) -> Path:
    """A small MNIST (200 train / 100 test MNIST-5k digits) in torchvision's layout
    (``<root>/MNIST/raw``)."""
    small = digits.subset(200, 100)
    root = tmp_path / "mnist"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, x, y in (
        ("train", small.train_x, small.train_y),
        ("t10k", small.test_x, small.test_y),
    ):
        _write_idx(raw / f"{split}-images-idx3-ubyte", (x * 255).round().numpy())
        _write_idx(raw / f"{split}-labels-idx1-ubyte", y.numpy())
    return root
