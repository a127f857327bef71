"""Batched random resized crops: ragged batches, torchvision's box distribution, PyTorch's
antialiased bicubic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import ks_2samp
from torchvision.transforms import v2

from dinov2.data.batched_crop import (
    RaggedImages,
    antialias_bicubic_weights,
    resized_crop,
    sample_resized_crop_boxes,
)

SIZES = [(37, 50), (60, 41), (30, 30), (120, 90)]


def _images(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g) for h, w in SIZES]


def test_ragged_images_round_trip_every_image():
    images = _images()
    ragged = RaggedImages.from_images(images)
    assert ragged.flat.numel() == sum(3 * h * w for h, w in SIZES)
    for n, image in enumerate(images):
        assert torch.equal(ragged.image(n), image)


def test_weights_of_an_identity_resize_are_the_identity():
    weights = antialias_bicubic_weights(torch.tensor([7]), 7, 9)
    expected = torch.cat([torch.eye(7), torch.zeros(7, 2)], 1)
    torch.testing.assert_close(weights[0], expected)


def test_weights_of_a_2x_downscale_are_pil_bicubic_taps():
    # Output pixel 2 of 8 -> 4 has centre 5.0 in input coordinates, support 4 (scale 2): taps at
    # input pixels 1..8, filter at (j + 0.5 - 5) / 2 = -1.75, -1.25, ..., 1.75 (a = -0.5),
    # normalised.
    def cubic(x: float) -> float:
        x = abs(x)
        return (
            1.5 * x**3 - 2.5 * x**2 + 1
            if x < 1
            else -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
            if x < 2
            else 0.0
        )

    taps = [cubic((j + 0.5 - 5) / 2) for j in range(8)]
    expected = torch.tensor(taps) / sum(taps)
    torch.testing.assert_close(
        antialias_bicubic_weights(torch.tensor([8]), 4, 8)[0, 2], expected.float()
    )


@pytest.mark.parametrize("size", [16, 48, 224])
def test_resized_crop_equals_torch_antialiased_bicubic_on_each_box(size):
    images = _images()
    ragged = RaggedImages.from_images(images)
    boxes = sample_resized_crop_boxes(
        ragged.sizes, (0.05, 1.0), generator=torch.Generator().manual_seed(1)
    )
    flip = torch.tensor([False, True, False, True])
    out = resized_crop(ragged, torch.arange(4), boxes, flip, size)
    for n, (top, left, h, w) in enumerate(boxes.tolist()):
        box = images[n][None, :, top : top + h, left : left + w].float() / 255
        expected = F.interpolate(box, size=(size, size), mode="bicubic", antialias=True).clamp(
            0, 1
        )[0]
        expected = expected.flip(-1) if flip[n] else expected
        torch.testing.assert_close(out[n], expected, atol=2e-5, rtol=0)


def test_resized_crop_of_one_image_many_times_picks_the_right_image():
    images = _images()
    ragged = RaggedImages.from_images(images)
    index = torch.tensor([3, 3, 0])
    boxes = torch.tensor([[0, 0, 120, 90], [10, 5, 20, 30], [0, 0, 37, 50]])
    out = resized_crop(ragged, index, boxes, torch.zeros(3, dtype=torch.bool), 20)
    for k, n in enumerate(index.tolist()):
        top, left, h, w = boxes[k].tolist()
        box = images[n][None, :, top : top + h, left : left + w].float() / 255
        expected = F.interpolate(box, size=(20, 20), mode="bicubic", antialias=True).clamp(0, 1)[0]
        torch.testing.assert_close(out[k], expected, atol=2e-5, rtol=0)


def test_boxes_follow_torchvision_random_resized_crop_distribution():
    scale, ratio, n = (0.05, 0.32), (3 / 4, 4 / 3), 4000
    sizes = torch.tensor([[375, 500]] * n)
    boxes = sample_resized_crop_boxes(
        sizes, scale, ratio, generator=torch.Generator().manual_seed(0)
    )
    torch.manual_seed(0)
    image = torch.zeros(3, 375, 500)
    reference = torch.tensor(
        [v2.RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)]
    )
    for name, ours, ref in [
        (
            "area fraction",
            boxes[:, 2] * boxes[:, 3] / (375 * 500),
            reference[:, 2] * reference[:, 3] / (375 * 500),
        ),
        ("aspect", boxes[:, 3] / boxes[:, 2], reference[:, 3] / reference[:, 2]),
        ("top", boxes[:, 0].double(), reference[:, 0].double()),
        ("left", boxes[:, 1].double(), reference[:, 1].double()),
    ]:
        assert ks_2samp(ours.numpy(), ref.numpy()).pvalue > 1e-3, name
    area = (boxes[:, 2] * boxes[:, 3]).double() / (375 * 500)
    # Rounding of h and w moves the area fraction slightly past the nominal range.
    assert area.min() >= scale[0] * 0.97 and area.max() <= scale[1] * 1.03
    aspect = (boxes[:, 3] / boxes[:, 2]).double()
    assert aspect.min() >= ratio[0] * 0.97 and aspect.max() <= ratio[1] * 1.03
    assert (boxes[:, 0] + boxes[:, 2] <= 375).all() and (boxes[:, 1] + boxes[:, 3] <= 500).all()


def test_boxes_fall_back_to_the_centred_clamped_ratio_crop_like_torchvision():
    # A 10x100 strip: no box of ratio <= 4/3 and area >= 0.9 fits, so every draw is the fallback.
    sizes = torch.tensor([[10, 100]] * 5)
    boxes = sample_resized_crop_boxes(sizes, (0.9, 1.0), generator=torch.Generator().manual_seed(0))
    width = round(10 * 4 / 3)
    expected = [0, (100 - width) // 2, 10, width]
    assert boxes.tolist() == [expected] * 5
    torch.manual_seed(0)
    assert (
        list(v2.RandomResizedCrop.get_params(torch.zeros(3, 10, 100), [0.9, 1.0], [3 / 4, 4 / 3]))
        == expected
    )


def test_boxes_of_different_images_are_independent():
    n = 6000
    sizes = torch.tensor([[64, 64]] * n)
    boxes = sample_resized_crop_boxes(
        sizes, (0.08, 1.0), generator=torch.Generator().manual_seed(3)
    )
    area = (boxes[:, 2] * boxes[:, 3]).double().numpy()
    # Consecutive crops: correlation within what independence allows (|r| < 4 / sqrt(n)).
    assert abs(np.corrcoef(area[:-1], area[1:])[0, 1]) < 4 / math.sqrt(n)
