"""Tiny two-class image trees and an experiment for the end-to-end pipeline tests (shared by
``tests/exps`` and ``tests/dinov2/run``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

# Every stage at toy size: ViT-pico on 32-px crops, 2 iterations per epoch, a 1-epoch UNet.
PIPELINE_EXPERIMENT = """\
name: twin
data: {{name: toy, clean_root: {clean}}}
noise: {{family: gauss, sigma_255: 50, workers: 2}}
pretrain:
  config_file: {repo}/dinov2/configs/train/vit_pico_small_images.yaml
  overrides:
    train: {{batch_size_per_gpu: 4, OFFICIAL_EPOCH_LENGTH: 2, checkpoint_period_iterations: 2,
             num_workers: 0}}
    evaluation: {{eval_period_iterations: 0}}
  epochs: 2
  switch_epoch: 1
  curriculum_epochs: 1
n2n: {{n_feature: 8, crop_size: 64, batch_size: 2, n_epoch: 1, n_samples_per_epoch: 4,
       val_photos: [coffee], val_size: 64, workers: 0}}
eval: {{resize_size: 32, crop_size: 32, batch_size: 8, num_workers: 0,
        linear: {{epochs: 1, batch_size: 4}}, knn: {{nb_knn: [1, 3]}}}}
"""


def write_pipeline_experiment(folder: Path) -> Path:
    """``folder/clean`` (:func:`write_two_class_tree`) and ``folder/twin.yaml`` reading it."""
    clean = folder / "clean"
    write_two_class_tree(clean)
    experiment = folder / "twin.yaml"
    experiment.write_text(PIPELINE_EXPERIMENT.format(clean=clean, repo=REPO))
    return experiment


def write_two_class_tree(root: Path) -> None:
    """Two classes of 32x32 RGB images (bright squares vs dark discs), 6 train and 3 val each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, n in (("train", 6), ("val", 3)):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                cy, cx = rng.integers(10, 22, 2)
                shape = (
                    (abs(yy - cy) < 7) & (abs(xx - cx) < 7)
                    if c == 0
                    else (yy - cy) ** 2 + (xx - cx) ** 2 < 49
                )
                img = (
                    np.where(shape[..., None], 220 if c == 0 else 120, 30)
                    .astype(np.uint8)
                    .repeat(3, axis=2)
                )
                Image.fromarray(img).save(folder / f"{i}.png")


def write_random_tree(root: Path, per_class: int) -> None:
    """Two classes of 32x32 random RGB images, ``per_class`` each in ``train`` and ``val`` (for
    stages that only need files to read)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(folder / f"{i}.png")
