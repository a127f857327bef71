"""DataAugmentationDINO: crop shapes, reproducibility, paired (noisy/denoised) crops, effective
probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from dinov2.data import DataAugmentationDINO

N_LOCAL = 2


def _augmentation(**kwargs) -> DataAugmentationDINO:
    return DataAugmentationDINO(
        (0.32, 1.0), (0.05, 0.32), N_LOCAL, global_crops_size=32, local_crops_size=16, **kwargs
    )


def _square_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) uint8 (3, 32, 32): dark background, bright off-centre square, +-3 noise."""
    clean = torch.full((3, 32, 32), 10, dtype=torch.uint8)
    clean[:, 6:16, 4:14] = 250
    noise = torch.randint(-3, 4, (1, 32, 32), generator=torch.Generator().manual_seed(0))
    noisy = (clean.int() + noise).clamp(0, 255).to(torch.uint8)
    return noisy, clean


@pytest.mark.parametrize("kind", ["tensor", "pil", "numpy", "pil_grey"])
def test_output_has_official_keys_shapes_and_dtypes(kind):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    image = {
        "tensor": torch.from_numpy(rgb).permute(2, 0, 1),
        "pil": Image.fromarray(rgb),
        "numpy": rgb,
        "pil_grey": Image.fromarray(rgb[..., 0]),
    }[kind]
    out = _augmentation()(image)
    assert set(out) == {"global_crops", "global_crops_teacher", "local_crops", "offsets"}
    assert out["global_crops_teacher"] == out["global_crops"] and out["offsets"] == ()
    assert [tuple(c.shape) for c in out["global_crops"]] == [(3, 32, 32)] * 2
    assert [tuple(c.shape) for c in out["local_crops"]] == [(3, 16, 16)] * N_LOCAL
    for crop in out["global_crops"] + out["local_crops"]:
        assert type(crop) is torch.Tensor and crop.dtype == torch.float32
    # Normalised with ImageNet statistics: values leave [0, 1].
    assert min(c.min() for c in out["global_crops"]) < 0


def test_torch_seed_reproduces_all_crops():
    image = _square_pair()[0]
    torch.manual_seed(11)
    first = _augmentation()(image)
    torch.manual_seed(11)
    second = _augmentation()(image)
    for key in ("global_crops", "local_crops"):
        assert all(torch.equal(a, b) for a, b in zip(first[key], second[key]))


def test_paired_copies_of_one_image_give_identical_global_crops():
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 32, 32), dtype=np.uint8))
    augmentation = _augmentation()
    for seed in range(20):
        torch.manual_seed(seed)
        out = augmentation(image, paired_image=image.clone())
        assert len(out["global_crops_paired"]) == 2 and len(out["local_crops"]) == N_LOCAL
        for noisy, paired in zip(out["global_crops"], out["global_crops_paired"]):
            assert torch.equal(noisy, paired)


def test_paired_noisy_and_clean_crops_are_geometrically_aligned():
    noisy, clean = _square_pair()
    augmentation = _augmentation()
    n_checked = 0
    for seed in range(30):
        torch.manual_seed(seed)
        out = augmentation(noisy, paired_image=clean)
        for crop_noisy, crop_clean in zip(out["global_crops"], out["global_crops_paired"]):
            c, n = crop_clean[0], crop_noisy[0]
            threshold = (c.max() + c.min()) / 2
            square_clean, square_noisy = c > threshold, n > threshold
            if not 8 <= square_clean.sum() <= 32 * 32 - 8:
                continue  # the crop missed the square (or is all square): nothing to locate
            iou = (square_clean & square_noisy).sum() / (square_clean | square_noisy).sum()
            assert iou >= 0.9, f"seed {seed}: square not at the same place (IoU {iou:.2f})"
            n_checked += 1
    assert n_checked >= 20


def test_paired_image_of_another_size_is_a_clear_error():
    with pytest.raises(ValueError, match="same height and width"):
        _augmentation()(
            torch.zeros(3, 32, 32, dtype=torch.uint8),
            paired_image=torch.zeros(3, 30, 32, dtype=torch.uint8),
        )


def test_probability_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match="local_crops_blur_p"):
        _augmentation(local_crops_blur_p=1.5)


def _spy(monkeypatch, cls, counts: dict) -> None:
    original = cls.forward

    def counting_forward(self, *inputs):
        counts[id(self)] = counts.get(id(self), 0) + 1
        return original(self, *inputs)

    monkeypatch.setattr(cls, "forward", counting_forward)


def test_effective_blur_and_solarize_probabilities_match_the_defaults(monkeypatch):
    """Measured over 250 images (16 px, 4 local crops; bounds ~3 standard errors): global 1 never
    blurred, global 2 blurred 90%, locals 50%, solarisation 20% on global 2 only (the official
    code's effective behaviour)."""
    n_local = 4
    augmentation = DataAugmentationDINO(
        (0.32, 1.0), (0.05, 0.32), n_local, global_crops_size=16, local_crops_size=8
    )
    blur_counts: dict = {}
    _spy(monkeypatch, v2.GaussianBlur, blur_counts)
    solarize_calls = []
    original_solarize = v2.RandomSolarize.transform
    monkeypatch.setattr(
        v2.RandomSolarize,
        "transform",
        lambda self, inpt, params: (
            solarize_calls.append(1) or original_solarize(self, inpt, params)
        ),
    )
    image = _square_pair()[0][:, :16, :16]
    torch.manual_seed(0)
    n_images = 250
    for _ in range(n_images):
        augmentation(image)

    def rate(pipeline, n_crops: int) -> float:
        blur = next(
            t
            for t in pipeline.transforms
            if isinstance(t, v2.RandomApply) and isinstance(t.transforms[0], v2.GaussianBlur)
        )
        return blur_counts.get(id(blur.transforms[0]), 0) / (n_images * n_crops)

    assert rate(augmentation.global_transfo1, 1) == 0.0
    assert rate(augmentation.global_transfo2, 1) == pytest.approx(0.9, abs=0.06)
    assert rate(augmentation.local_transfo, n_local) == pytest.approx(0.5, abs=0.05)
    assert len(solarize_calls) / n_images == pytest.approx(0.2, abs=0.075)
