"""Per-sample views: torchvision v2's kernels and parameter ranges, and views that keep the
digit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from toy_mnist.augment import (
    affine,
    random_view,
    resized_crop,
    sample_affine_params,
    sample_crop_params,
)
from toy_mnist.data import Digits


def test_batched_kernels_equal_torchvision_v2_applied_sample_by_sample(digits: Digits) -> None:
    x = digits.train_x[:32]
    g = torch.Generator().manual_seed(0)
    crop, warp = sample_crop_params(32, (28, 28), g), sample_affine_params(32, (28, 28), g)
    cropped = resized_crop(x, crop, 28)
    warped = affine(cropped, warp)
    for i in range(32):
        ref_crop = TF.resized_crop(
            x[i : i + 1],
            int(crop.top[i]),
            int(crop.left[i]),
            int(crop.height[i]),
            int(crop.width[i]),
            [28, 28],
            antialias=True,
        )
        torch.testing.assert_close(cropped[i], ref_crop[0], atol=1e-5, rtol=0)
        ref_warp = TF.affine(
            cropped[i : i + 1],
            angle=float(warp.angle[i]),
            scale=float(warp.scale[i]),
            translate=[float(warp.tx[i]), float(warp.ty[i])],
            shear=[float(warp.shear_x[i]), 0.0],
        )
        torch.testing.assert_close(warped[i], ref_warp[0], atol=1e-6, rtol=0)


def test_parameters_are_drawn_per_sample_within_the_transform_ranges() -> None:
    n = 4000
    g = torch.Generator().manual_seed(1)
    c = sample_crop_params(n, (28, 28), g)
    area = c.height * c.width
    assert (
        (c.top >= 0) & (c.left >= 0) & (c.top + c.height <= 28) & (c.left + c.width <= 28)
    ).all()
    # rounding w and h moves the area by at most about one row + one column around [0.8, 1] × 784
    assert area.min() >= 0.8 * 784 - 2 * 28 and area.max() <= 784
    ratio = c.width / c.height
    assert (
        ratio.min() >= 0.7
        and ratio.max() <= 1.4
        and len(set(zip(c.height.tolist(), c.width.tolist()))) > 10
    )
    a = sample_affine_params(n, (28, 28), g)
    assert a.angle.abs().max() <= 15 and a.angle.abs().max() > 14
    assert a.shear_x.abs().max() <= 10 and a.shear_x.abs().max() > 9.5
    assert a.scale.min() >= 0.95 and a.scale.max() <= 1.05
    # translate=(0.1, 0.1) on 28 pixels: whole-pixel shifts in [-2.8, 2.8] → -3 .. 3
    assert set(a.tx.tolist()) == set(range(-3, 4)) and torch.equal(a.tx, a.tx.round())


def _unit(im: torch.Tensor) -> torch.Tensor:
    im = im - im.mean(dim=(-2, -1), keepdim=True)
    return im / im.flatten(-2).norm(dim=-1)[..., None, None]


def test_views_differ_from_the_digit_and_from_each_other_but_keep_its_class(digits: Digits) -> None:
    """A fixed, shift-tolerant probe (class-mean templates, best normalised correlation over ±4 px
    shifts) classifies views almost as well as the originals; the same probe fails on flipped views,
    so a view that lost its digit (wrong axes, flipped sampling grid, too strong a warp) fails the
    test."""
    templates = _unit(torch.stack([digits.train_x[digits.train_y == k].mean(0) for k in range(10)]))

    def classify(im: torch.Tensor) -> torch.Tensor:
        return (
            F.conv2d(_unit(im)[:, None], templates[:, None], padding=4).amax(dim=(2, 3)).argmax(1)
        )

    x, y = digits.test_x, digits.test_y
    g = torch.Generator().manual_seed(0)
    view1, view2 = random_view(x, g), random_view(x, g)
    assert (view1 - x).abs().mean() > 0.05 and (view1 - view2).abs().mean() > 0.05
    assert (
        (view1 - view2).flatten(1).abs().amax(1) > 0
    ).all()  # every digit gets its own parameters
    acc_orig = (classify(x) == y).float().mean().item()
    acc_view = (classify(view1) == y).float().mean().item()
    acc_flipped = (classify(view1.flip(1)) == y).float().mean().item()
    assert acc_orig > 0.75
    assert acc_view > 0.8 * acc_orig
    assert acc_flipped < 0.5 * acc_orig
    # the ink is kept: the crop zooms the area by 1 .. 1/0.8 and the affine scale² by 0.90 .. 1.10
    ink_ratio = view1.sum(dim=(1, 2)) / x.sum(dim=(1, 2))
    assert 0.9 < ink_ratio.median().item() < 1.3
