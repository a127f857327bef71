"""Classification transforms and GaussianBlur's effective probability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dinov2.data.transforms import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    GaussianBlur,
    make_classification_eval_transform,
    make_classification_train_transform,
)


def _expected_normalised(rgb: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(
        [(v / 255 - m) / s for v, m, s in zip(rgb, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)]
    )


def test_eval_transform_resizes_centre_crops_and_normalises_a_pil_image():
    image = Image.new("RGB", (300, 200), color=(200, 100, 50))
    out = make_classification_eval_transform(resize_size=64, crop_size=56)(image)
    assert type(out) is torch.Tensor and out.shape == (3, 56, 56) and out.dtype == torch.float32
    torch.testing.assert_close(
        out[:, 28, 28], _expected_normalised((200, 100, 50)), atol=1e-2, rtol=0
    )


def test_eval_transform_accepts_float_tensors_in_unit_range():
    image = torch.full((3, 80, 60), 0.5)
    out = make_classification_eval_transform(resize_size=64, crop_size=56)(image)
    expected = torch.tensor(
        [(0.5 - m) / s for m, s in zip(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)]
    )
    torch.testing.assert_close(out[:, 10, 10], expected, atol=1e-4, rtol=0)


def test_train_transform_gives_crop_of_requested_size_from_grey_numpy():
    grey = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    out = make_classification_train_transform(crop_size=32)(Image.fromarray(grey))
    assert out.shape == (3, 32, 32)


@pytest.mark.parametrize("p, expected_rate", [(0.0, 0.0), (1.0, 1.0)])
def test_gaussian_blur_p_is_the_probability_of_blurring(p, expected_rate):
    checkerboard = torch.zeros(3, 16, 16, dtype=torch.uint8)
    checkerboard[:, ::2, ::2] = 255
    checkerboard[:, 1::2, 1::2] = 255
    blur = GaussianBlur(p=p, radius_min=2.0, radius_max=2.0)
    blurred = [not torch.equal(blur(checkerboard), checkerboard) for _ in range(20)]
    assert np.mean(blurred) == expected_rate
