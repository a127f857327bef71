"""Fixtures of the toy-experiment tests: the embedded digits, loaded once per session."""

from __future__ import annotations

import pytest

from toy_mnist.data import Digits, load_digits


@pytest.fixture(scope="session")
def digits() -> Digits:
    """MNIST-5k as float tensors (4000 train / 1000 test)."""
    return load_digits()
