"""Fixtures of the evaluation tests: a tiny randomly initialised ViT and tiny image datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"


@pytest.fixture(scope="session")
def pico_config() -> Path:
    """The tiny ViT-pico/8 training preset (32×32 images)."""
    return CONFIG


@pytest.fixture
def tiny_vit() -> torch.nn.Module:
    from dinov2.models.vision_transformer import DinoVisionTransformer

    torch.manual_seed(0)
    return DinoVisionTransformer(
        img_size=32, patch_size=8, embed_dim=16, depth=4, num_heads=2
    ).eval()


class ColourSquares(Dataset):
    """``n`` 32×32 images of ``n_classes`` classes: class c is a bright square at position c, plus
    noise."""

    def __init__(self, n: int, n_classes: int = 2, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % n_classes
        self.images = 0.1 * torch.randn(n, 3, 32, 32, generator=g)
        for i, c in enumerate(self.labels.tolist()):
            self.images[i, :, 8 * c : 8 * c + 16, 8:24] += 2.0
        self.targets = self.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


@pytest.fixture
def squares() -> tuple[Dataset, Dataset]:
    return ColourSquares(24, seed=0), ColourSquares(12, seed=1)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A teacher_checkpoint.pth in the official training-export layout for the pico config."""
    from dinov2.eval.setup import build_backbone, load_model_config

    model = build_backbone(load_model_config(CONFIG))
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    state["dino_head.last_layer.weight"] = torch.zeros(4, 4)
    path = tmp_path_factory.mktemp("run") / "teacher_checkpoint.pth"
    torch.save({"teacher": state}, path)
    return path


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory) -> Path:
    """ImageFolder root with 2 classes × (6 train, 3 val) 32×32 PNGs, indexed like
    process_metadata.py does."""
    from dinov2.data.datasets.extra import build_index

    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for c in range(2):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                img[8 * c : 8 * c + 16] += 150
                Image.fromarray(img).save(root / split / f"c{c}" / f"{i}.png")
    build_index(root)
    return root
