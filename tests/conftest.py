"""Shared fixtures: small generated data, never downloads."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mnist5k_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded MNIST-5k written once per test session as an ImageFolder tree."""
    from utils.embedded import build_mnist5k

    return build_mnist5k(tmp_path_factory.mktemp("data") / "mnist5k")
