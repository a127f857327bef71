"""Shared fixtures: small generated data, never downloads."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist5k_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded MNIST-5k written once per test session as an ImageFolder tree."""
    from utils.embedded import build_mnist5k

    return build_mnist5k(tmp_path_factory.mktemp("data") / "mnist5k")


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Tiny models and images: one intra-op thread is faster than two contending ones (10-100×
    here)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
