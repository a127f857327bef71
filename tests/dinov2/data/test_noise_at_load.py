"""``noise=SPEC`` in a dataset string: the pixels utils.generate_noise writes, without the noisy
tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dinov2.data import make_dataset
from dinov2.data.datasets import build_index
from utils.generate_noise import noisy_rel_path
from utils.image_io import load_rgb_uint8

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean tree: RGB JPEGs, a grey PNG, an RGB PNG in a nested folder, different sizes."""
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for c in range(2):
        folder = root / "train" / f"class{c}"
        (folder / "sub").mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (33, 40, 3), dtype=np.uint8)).save(
            folder / "a.jpg", quality=90
        )
        Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(folder / "b.png")
        Image.fromarray(rng.integers(0, 256, (25, 37, 3), dtype=np.uint8)).save(
            folder / "sub" / "c.png"
        )
    build_index(root)
    return root


def _generate_noise(clean: Path, noisy: Path, spec: str, seed: int | None) -> None:
    """The noisy tree, written by the real CLI in its own process, then indexed."""
    seed_args = [] if seed is None else ["--seed", str(seed)]
    cmd = [
        sys.executable,
        "-m",
        "utils.generate_noise",
        "--src",
        str(clean),
        "--dst",
        str(noisy),
        "--noise",
        spec,
        "--splits",
        "train",
        "--workers",
        "1",
        *seed_args,
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    build_index(noisy)


@pytest.mark.parametrize(("spec", "seed"), [("gauss_255", None), ("shot_3", 7), ("speckle_0.4", 3)])
def test_load_time_noise_equals_the_generated_noisy_tree(tmp_path, clean_root, spec, seed):
    noisy = tmp_path / "noisy"
    _generate_noise(clean_root, noisy, spec, seed)
    seed_opt = "" if seed is None else f":noise_seed={seed}"  # default 42, as the CLI
    dataset = make_dataset(
        dataset_str=f"ImageNet:split=TRAIN:root={clean_root}:noise={spec}{seed_opt}"
    )
    clean = make_dataset(dataset_str=f"ImageNet:split=TRAIN:root={clean_root}")
    assert len(dataset) == 6
    for index in range(len(dataset)):
        expected = load_rgb_uint8(noisy / noisy_rel_path(dataset.get_image_rel_path(index)))
        got = np.asarray(dataset[index][0])
        assert got.dtype == np.uint8 and np.array_equal(got, expected), dataset.get_image_rel_path(
            index
        )
        assert not np.array_equal(got, np.asarray(clean[index][0]))
        assert dataset[index][1] == clean[index][1]


def test_training_batches_from_load_time_noise_equal_those_of_the_noisy_tree(tmp_path, clean_root):
    from dinov2.train.data import build_train_data_loader
    from dinov2.utils.config import load_training_config

    noisy = tmp_path / "noisy"
    _generate_noise(clean_root, noisy, "gauss_100", None)

    def first_batch(dataset_path: str, augmentation: str) -> dict:
        cfg = load_training_config(
            REPO / "dinov2/configs/train/vit_pico_cpu.yaml",
            [
                f"train.output_dir={tmp_path / 'run'}",
                f"train.dataset_path={dataset_path}",
                "train.batch_size_per_gpu=4",
                f"train.augmentation={augmentation}",
            ],
        )
        return next(iter(build_train_data_loader(cfg, 0)))

    paths = ("per_image", "batched")
    from_tree = {a: first_batch(f"ImageNet:split=TRAIN:root={noisy}", a) for a in paths}
    shutil.rmtree(noisy)  # the noisy copy is not needed any more
    for augmentation in paths:
        at_load = first_batch(
            f"ImageNet:split=TRAIN:root={clean_root}:noise=gauss_100", augmentation
        )
        assert torch.equal(
            at_load["collated_global_crops"], from_tree[augmentation]["collated_global_crops"]
        )
        assert torch.equal(
            at_load["collated_local_crops"], from_tree[augmentation]["collated_local_crops"]
        )


def test_paired_dataset_adds_the_noise_to_the_noisy_side_only(tmp_path, clean_root):
    denoised = tmp_path / "denoised"
    shutil.copytree(clean_root / "train", denoised / "train")
    dataset = make_dataset(
        dataset_str=f"PairedImageNet:split=TRAIN:root={clean_root}:paired_root={denoised}"
        ":noise=gauss_50"
    )
    noisy_only = make_dataset(dataset_str=f"ImageNet:split=TRAIN:root={clean_root}:noise=gauss_50")
    (image, paired), _ = dataset[0]
    assert np.array_equal(np.asarray(image), np.asarray(noisy_only[0][0]))
    assert np.array_equal(np.asarray(paired), load_rgb_uint8(dataset.get_paired_image_path(0)))


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("noise=gauss", "key noise.*valid forms"),
        ("noise=gauss_50:noise_seed=x", "noise_seed='x' is not an integer"),
    ],
)
def test_bad_noise_option_is_a_one_line_error(clean_root, option, message):
    with pytest.raises(ValueError, match=message) as info:
        make_dataset(dataset_str=f"ImageNet:split=TRAIN:root={clean_root}:{option}")
    assert "\n" not in str(info.value)
