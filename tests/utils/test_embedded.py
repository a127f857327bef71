"""The embedded MNIST-5k tree: split sizes, stratification, determinism, safety."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.embedded import build_mnist5k, ensure_clean_root, mnist5k_arrays, mnist5k_split


def test_split_is_stratified_4000_1000_and_fixed() -> None:
    _, labels = mnist5k_arrays()
    train, val = mnist5k_split(labels)
    assert len(train) == 4000 and len(val) == 1000
    assert not set(train) & set(val)
    assert np.bincount(labels[val]).tolist() == [100] * 10
    assert np.bincount(labels[train]).tolist() == [400] * 10
    train2, val2 = mnist5k_split(labels)
    assert np.array_equal(val, val2) and np.array_equal(train, train2)


def test_tree_has_imagefolder_layout_and_real_digits(mnist5k_root: Path) -> None:
    images, labels = mnist5k_arrays()
    for split, n in (("train", 400), ("val", 100)):
        classes = sorted(p.name for p in (mnist5k_root / split).iterdir())
        assert classes == [str(c) for c in range(10)]
        assert all(len(list((mnist5k_root / split / c).glob("*.png"))) == n for c in classes)
    sample = next((mnist5k_root / "val" / "3").glob("*.png"))
    index = int(sample.stem)
    assert labels[index] == 3
    assert np.array_equal(np.asarray(Image.open(sample)), images[index])
    assert (mnist5k_root / "labels.txt").read_text().splitlines()[0] == "0,0"


def test_building_twice_is_a_no_op(mnist5k_root: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in mnist5k_root.rglob("*.png")}
    assert build_mnist5k(mnist5k_root) == mnist5k_root
    assert before == {p: p.stat().st_mtime_ns for p in mnist5k_root.rglob("*.png")}


def test_a_foreign_non_empty_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        build_mnist5k(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_clean_root_without_builder_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data.clean_root"):
        ensure_clean_root(None, tmp_path / "missing")
    with pytest.raises(ValueError, match="data.builder"):
        ensure_clean_root("imagenet", tmp_path / "x")
