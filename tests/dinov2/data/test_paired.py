"""PairedImageNet: extension-agnostic noisy/denoised pairs, paired augmentation through the dataset,
pair checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dinov2.data import DataAugmentationDINO
from dinov2.data.datasets import build_index
from dinov2.data.paired import PairedDatasetError, PairedImageNet

SIZE = 36


def _clean_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth random pattern with a bright square: strong, unambiguous geometry."""
    low = rng.integers(0, 120, (6, 6, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(low).resize((SIZE, SIZE), Image.BICUBIC)).copy()
    y, x = rng.integers(2, SIZE - 14, 2)
    img[y : y + 12, x : x + 12] = 250
    return img


@pytest.fixture()
def trees(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``(noisy, denoised, copy)`` roots: noisy ``.jpg`` images (indexed), their clean versions as
    ``.png`` (a perfect "denoiser"), and a lossless ``.png`` copy of the noisy images."""
    rng = np.random.default_rng(0)
    noisy_root, denoised_root, copy_root = (
        tmp_path / "noisy",
        tmp_path / "denoised",
        tmp_path / "copy",
    )
    for c in range(2):
        for root in (noisy_root, denoised_root, copy_root):
            (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(3):
            clean = _clean_image(rng)
            noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(
                noisy_root / "train" / f"class{c}" / f"img{i}.jpg", quality=95
            )
            Image.fromarray(clean).save(denoised_root / "train" / f"class{c}" / f"img{i}.png")
            decoded = Image.open(noisy_root / "train" / f"class{c}" / f"img{i}.jpg").convert("RGB")
            decoded.save(copy_root / "train" / f"class{c}" / f"img{i}.png")
    build_index(noisy_root)
    return noisy_root, denoised_root, copy_root


def _augmentation() -> DataAugmentationDINO:
    return DataAugmentationDINO(
        (0.32, 1.0), (0.05, 0.32), 2, global_crops_size=32, local_crops_size=16
    )


def test_pairs_are_matched_by_relative_path_whatever_the_extension(trees):
    noisy_root, denoised_root, _ = trees
    ds = PairedImageNet(split="TRAIN", root=noisy_root, paired_root=denoised_root)
    assert len(ds) == 6
    for index in range(len(ds)):
        noisy_path, paired_path = ds.get_image_path(index), ds.get_paired_image_path(index)
        assert noisy_path.suffix == ".jpg" and paired_path.suffix == ".png"
        assert paired_path.relative_to(denoised_root).with_suffix("") == noisy_path.relative_to(
            noisy_root
        ).with_suffix("")
        (noisy, denoised), target = ds[index]
        assert target == ds.get_target(index)
        np.testing.assert_array_equal(
            np.asarray(denoised), np.asarray(Image.open(paired_path).convert("RGB"))
        )
        np.testing.assert_array_equal(
            np.asarray(noisy), np.asarray(Image.open(noisy_path).convert("RGB"))
        )


def test_paired_augmentation_of_two_copies_gives_identical_tensors(trees):
    noisy_root, _, copy_root = trees
    ds = PairedImageNet(
        split="TRAIN", root=noisy_root, paired_root=copy_root, transform=_augmentation()
    )
    torch.manual_seed(0)
    for index in range(len(ds)):
        out, _ = ds[index]
        assert len(out["global_crops_paired"]) == 2
        for crop, paired in zip(out["global_crops"], out["global_crops_paired"], strict=True):
            assert torch.equal(crop, paired)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.mean(0).flatten(), b.mean(0).flatten()  # grey level of (3, H, W) crops
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm() + 1e-8))


def test_noisy_and_denoised_global_crops_are_geometrically_aligned(trees):
    """Each noisy crop correlates strongly with its denoised partner, not with an independent
    crop."""
    noisy_root, denoised_root, _ = trees
    aug = _augmentation()
    ds = PairedImageNet(split="TRAIN", root=noisy_root, paired_root=denoised_root, transform=aug)
    torch.manual_seed(0)
    aligned, independent = [], []
    for index in range(len(ds)):
        out, _ = ds[index]
        other = aug(Image.open(ds.get_paired_image_path(index)).convert("RGB"))["global_crops"]
        for crop, paired, indep in zip(
            out["global_crops"], out["global_crops_paired"], other, strict=True
        ):
            aligned.append(_correlation(crop, paired))
            independent.append(_correlation(crop, indep))
    assert min(aligned) > 0.75, aligned
    assert np.mean(independent) < np.mean(aligned) - 0.3, (aligned, independent)


def test_missing_denoised_images_are_listed_with_their_count(trees):
    noisy_root, denoised_root, _ = trees
    (denoised_root / "train" / "class1" / "img2.png").unlink()
    (denoised_root / "train" / "class0" / "img0.png").unlink()
    with pytest.raises(PairedDatasetError) as e:
        PairedImageNet(split="TRAIN", root=noisy_root, paired_root=denoised_root)
    msg = str(e.value)
    assert "2 noisy images have no denoised counterpart" in msg
    assert "class0/img0.jpg" in msg and "class1/img2.jpg" in msg


def test_denoised_image_of_another_size_is_reported(trees):
    noisy_root, denoised_root, _ = trees
    path = denoised_root / "train" / "class0" / "img1.png"
    Image.open(path).resize((SIZE, SIZE - 4)).save(path)
    with pytest.raises(
        PairedDatasetError,
        match=r"1 pairs differ in size, e\.g\. class0/img1\.jpg \(36x36 vs 36x32\)",
    ):
        PairedImageNet(split="TRAIN", root=noisy_root, paired_root=denoised_root)


def test_missing_denoised_split_folder_names_the_fix(trees):
    noisy_root, denoised_root, _ = trees
    shutil.rmtree(denoised_root / "train")
    with pytest.raises(PairedDatasetError, match="does not exist; denoise the noisy dataset"):
        PairedImageNet(split="TRAIN", root=noisy_root, paired_root=denoised_root)


def test_dataset_string_builds_a_paired_dataset_and_requires_paired_root(trees):
    from dinov2.data import make_dataset

    noisy_root, denoised_root, _ = trees
    ds = make_dataset(
        dataset_str=f"PairedImageNet:split=TRAIN:root={noisy_root}:paired_root={denoised_root}"
    )
    assert isinstance(ds, PairedImageNet) and len(ds) == 6 and ds.paired_root == denoised_root
    with pytest.raises(ValueError, match="PairedImageNet needs paired_root="):
        make_dataset(dataset_str=f"PairedImageNet:split=TRAIN:root={noisy_root}")
