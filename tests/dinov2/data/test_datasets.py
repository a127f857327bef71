"""dinov2.data.datasets.ImageNet: reads the process_metadata index, any size/extension, stale index
errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinov2.data.datasets import DatasetIndexError, ImageNet
from process_metadata import main as process_metadata


def make_root(root: Path) -> Path:
    """train: a=3 (png, JPG, 16-bit png), b=2 (bmp, rgba png); val: b=1 (tif). Class value in red
    channel."""
    rng = np.random.default_rng(0)
    files = {
        "train/a/0.png": "RGB",
        "train/a/1.JPG": "RGB",
        "train/a/2.png": "I;16",
        "train/b/0.bmp": "RGB",
        "train/b/1.png": "RGBA",
        "val/b/0.tif": "RGB",
    }
    for rel, mode in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        size = (10 + len(rel), 12)
        if mode == "I;16":
            Image.fromarray(rng.integers(0, 65536, size[::-1], dtype=np.uint16)).save(root / rel)
        else:
            Image.new(mode, size, (200, 10, 10, 255)[: len(mode)]).save(root / rel)
    (root / "labels.txt").write_text("a,apple\nb,banana\n")
    return root


@pytest.fixture
def root(tmp_path) -> Path:
    root = make_root(tmp_path / "ds")
    assert process_metadata([str(root)]) == 0
    return root


def test_dataset_size_targets_and_classes_come_from_the_index(root):
    train = ImageNet(split=ImageNet.Split.TRAIN, root=root, extra=root / "extra")
    assert len(train) == 5
    np.testing.assert_array_equal(train.get_targets(), [0, 0, 0, 1, 1])
    assert [train.get_target(i) for i in range(5)] == [0, 0, 0, 1, 1]
    assert train.get_class_names().tolist() == ["apple", "banana"]
    assert train.get_class_id(4) == "b" and train.get_class_name(4) == "banana"
    val = ImageNet(split="val", root=root)  # extra defaults to ROOT/extra
    assert len(val) == 1 and val.get_target(0) == 1


def test_items_are_rgb_pil_images_of_the_stored_size(root):
    train = ImageNet(split="TRAIN", root=root)
    for i in range(len(train)):
        image, target = train[i]
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        assert image.size == Image.open(train.get_image_path(i)).size
    assert train.get_image_data(1) == (root / "train/a/1.JPG").read_bytes()
    rgba_image, _ = train[4]
    assert rgba_image.getpixel((0, 0)) == (200, 10, 10)


def test_transforms_are_applied_to_image_and_target(root):
    ds = ImageNet(
        split="VAL",
        root=root,
        transform=lambda im: np.asarray(im),
        target_transform=lambda t: t + 10,
    )
    image, target = ds[0]
    assert image.shape == (12, 21, 3) and target == 11


@pytest.mark.parametrize("change", ["add", "remove"])
def test_stale_index_error_names_the_fixing_command(root, change):
    if change == "add":
        Image.new("RGB", (4, 4)).save(root / "train" / "a" / "new.webp")
    else:
        (root / "train" / "b" / "0.bmp").unlink()
    with pytest.raises(
        DatasetIndexError, match=rf"stale .* run: python process_metadata.py {root}$"
    ):
        ImageNet(split="TRAIN", root=root)
    assert len(ImageNet(split="VAL", root=root)) == 1  # the other split is unaffected
    assert process_metadata([str(root)]) == 0
    assert len(ImageNet(split="TRAIN", root=root)) == (6 if change == "add" else 4)


def test_index_of_aged_folders_is_accepted_then_detects_a_new_file(root):
    # Folders older than the racy window: the folder-mtime check path (no full listing) decides.
    old = time.time() - 3600
    for folder in [root / "train", *(root / "train").iterdir()]:
        os.utime(folder, (old, old))
    assert process_metadata([str(root)]) == 0
    assert len(ImageNet(split="TRAIN", root=root)) == 5
    Image.new("RGB", (4, 4)).save(root / "train" / "b" / "late.png")  # changes b's mtime
    with pytest.raises(DatasetIndexError, match="stale"):
        ImageNet(split="TRAIN", root=root)


def test_missing_index_error_names_the_fixing_command(tmp_path):
    root = make_root(tmp_path / "raw")
    with pytest.raises(
        DatasetIndexError, match=rf"missing\); run: python process_metadata.py {root}$"
    ):
        ImageNet(split="TRAIN", root=root)
    with pytest.raises(DatasetIndexError, match=rf"--extra {tmp_path / 'idx'}$"):
        ImageNet(split="TRAIN", root=root, extra=tmp_path / "idx")
