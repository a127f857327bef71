"""dinov2.data.loaders.make_dataset: the official dataset-string DSL and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dinov2.data.datasets import ImageNet, build_index
from dinov2.data.loaders import _parse_dataset_str, make_dataset


@pytest.fixture
def root(tmp_path):
    for rel in ("train/x/0.png", "train/y/0.jpg", "train/y/1.png", "val/x/0.png"):
        (tmp_path / "ds" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 5), (1, 2, 3)).save(tmp_path / "ds" / rel)
    build_index(tmp_path / "ds", tmp_path / "idx")
    return tmp_path / "ds"


def test_dataset_string_gives_the_split_root_and_extra(root, tmp_path):
    ds = make_dataset(dataset_str=f"ImageNet:split=TRAIN:root={root}:extra={tmp_path / 'idx'}")
    assert isinstance(ds, ImageNet) and ds.split is ImageNet.Split.TRAIN and len(ds) == 3
    np.testing.assert_array_equal(ds.get_targets(), [0, 1, 1])
    val = make_dataset(
        dataset_str=f"ImageNet:split=val:root={root}:extra={tmp_path / 'idx'}"
    )  # any case
    assert val.split is ImageNet.Split.VAL and len(val) == 1


def test_transforms_are_passed_through(root, tmp_path):
    ds = make_dataset(
        dataset_str=f"ImageNet:split=VAL:root={root}:extra={tmp_path / 'idx'}",
        transform=lambda im: im.size,
        target_transform=str,
    )
    assert ds[0] == ((6, 5), "0")


def test_parse_returns_class_and_keyword_arguments():
    cls, kwargs = _parse_dataset_str("ImageNet:split=Train:root=/data/in100")
    assert cls is ImageNet and kwargs == {"split": ImageNet.Split.TRAIN, "root": "/data/in100"}


@pytest.mark.parametrize(
    ("dataset_str", "message"),
    [
        ("ImageNet22k:split=TRAIN:root=/r", "unknown dataset 'ImageNet22k'.*valid: ImageNet"),
        (
            "ImageNet:split=TRAIN:root=/r:sizes=3",
            "unknown key 'sizes'.*valid: extra, noise, noise_seed, root, split",
        ),
        ("ImageNet:split=TEST:root=/r", "unknown split 'TEST'; valid: TRAIN, VAL"),
        ("ImageNet:root=/r", "lacks split="),
        ("ImageNet:split=TRAIN", "lacks root="),
        ("ImageNet:split=TRAIN:root", "bad token 'root'"),
        ("ImageNet:split=TRAIN:split=VAL:root=/r", "given twice"),
    ],
)
def test_bad_dataset_strings_are_rejected_with_a_clear_message(dataset_str, message):
    with pytest.raises(ValueError, match=message):
        make_dataset(dataset_str=dataset_str)
