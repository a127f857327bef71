"""Batched multi-crop augmentation vs the per-image reference (DataAugmentationDINO / torchvision).

Pixels: each operation equals torchvision's on the same parameters; parameters: the rates and
ranges of the per-image pipeline's own transforms, independent across crops.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dinov2.data import DataAugmentationDINO
from dinov2.data.batched_augmentations import (
    BatchedDataAugmentationDINO,
    CropParams,
    DecodedImage,
    augment_crops,
    color_jitter_,
    sample_crop_params,
)
from dinov2.data.batched_crop import RaggedImages, sample_resized_crop_boxes
from dinov2.data.transforms import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    make_normalize_transform,
)

KWARGS = dict(
    global_crops_scale=(0.32, 1.0),
    local_crops_scale=(0.05, 0.32),
    local_crops_number=3,
    global_crops_size=32,
    local_crops_size=16,
    global_crops_1_blur_p=0.3,
    global_crops_2_blur_p=0.9,
    local_crops_blur_p=0.5,
    global_crops_2_solarize_p=0.2,
)
MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
# The reference resizes uint8 images with uint8 intermediates (rounded and clamped between the two
# separable passes): on these photo crops torchvision's uint8 result and PyTorch's float kernel on
# the same box differ by up to 3.4 grey levels, 0.3 on average (measured); ours is the float kernel.
MAX_GREY_LEVELS, MEAN_GREY_LEVELS = 4.0, 0.4


def _images(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, 30 + k % 5, 34 - k % 3), dtype=torch.uint8, generator=g)
        for k in range(n)
    ]


def _photos(n: int) -> list[torch.Tensor]:
    """``n`` different 40x52 pieces of a bundled photo (natural image statistics, not noise)."""
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256), Image.BICUBIC))
    pieces = [photo[20 * k : 20 * k + 40, 15 * k : 15 * k + 52] for k in range(n)]
    return [torch.from_numpy(p.copy()).permute(2, 0, 1).contiguous() for p in pieces]


def _plain_params(boxes: torch.Tensor, flip: torch.Tensor) -> CropParams:
    n = len(boxes)
    off = torch.zeros(n, dtype=torch.bool)
    return CropParams(
        boxes,
        flip,
        off,
        torch.ones(n, 4),
        torch.arange(4).repeat(n, 1),
        off,
        off,
        torch.ones(n),
        off,
    )


def test_flip_only_configuration_equals_the_per_image_path_within_interpolation_tolerance():
    images = _photos(6)
    ragged = RaggedImages.from_images(images)
    boxes = sample_resized_crop_boxes(
        ragged.sizes, (0.32, 1.0), generator=torch.Generator().manual_seed(0)
    )
    flip = torch.tensor([True, False] * 3)
    out = augment_crops(ragged, torch.arange(6), _plain_params(boxes, flip), 24, MEAN, STD)
    normalize = make_normalize_transform()
    for n, (top, left, h, w) in enumerate(boxes.tolist()):
        crop = TF.resized_crop(
            images[n], top, left, h, w, [24, 24], v2.InterpolationMode.BICUBIC, antialias=True
        )
        expected = normalize(TF.horizontal_flip(crop) if flip[n] else crop)
        grey_levels = ((out[n] - expected) * STD[0] * 255).abs()
        assert grey_levels.max() <= MAX_GREY_LEVELS and grey_levels.mean() <= MEAN_GREY_LEVELS, n


def test_identity_configuration_returns_the_normalised_images():
    images = [torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8) for _ in range(3)]
    boxes = torch.tensor([[0, 0, 20, 20]] * 3)
    out = augment_crops(
        RaggedImages.from_images(images),
        torch.arange(3),
        _plain_params(boxes, torch.zeros(3) > 0),
        20,
        MEAN,
        STD,
    )
    torch.testing.assert_close(
        out, (torch.stack(images).float() / 255 - MEAN) / STD, atol=1e-5, rtol=0
    )


def test_jitter_applies_each_crops_own_order_of_the_torchvision_adjustments():
    perms = torch.tensor(list(itertools.permutations(range(4)))[::4])  # 6 different orders
    n = len(perms)
    x = torch.rand(n, 3, 12, 14, generator=torch.Generator().manual_seed(0))
    factors = torch.tensor([[1.3, 0.7, 1.15, 0.08], [0.65, 1.35, 0.85, -0.06]]).repeat(3, 1)
    jitter = torch.tensor([True, True, True, True, True, False])
    params = CropParams(
        torch.zeros(n, 4),
        torch.zeros(n) > 0,
        jitter,
        factors,
        perms,
        torch.zeros(n) > 0,
        torch.zeros(n) > 0,
        torch.ones(n),
        torch.zeros(n) > 0,
    )
    out = x.clone()
    color_jitter_(out, params)
    adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for k in range(n):
        expected = x[k]
        if jitter[k]:
            for op in perms[k].tolist():
                expected = adjust[op](expected, float(factors[k, op]))
        torch.testing.assert_close(out[k], expected, atol=1e-4, rtol=0)


def test_grayscale_blur_and_solarize_equal_torchvision_on_the_selected_crops():
    n = 4
    images = _images(n, seed=1)
    boxes = torch.tensor([[0, 0, 30, 30]] * n)
    selected = torch.tensor([True, False, True, False])
    sigma = torch.tensor([0.3, 1.0, 1.7, 2.0])
    for what in ("grayscale", "blur", "solarize"):
        params = _plain_params(boxes, torch.zeros(n) > 0)
        setattr(params, what, selected)
        params.blur_sigma = sigma
        out = augment_crops(
            RaggedImages.from_images(images), torch.arange(n), params, 30, MEAN, STD
        )
        for k in range(n):
            x = images[k][:, :30, :30].float() / 255
            if selected[k]:
                if what == "grayscale":
                    x = TF.rgb_to_grayscale(x, num_output_channels=3)
                elif what == "blur":
                    x = TF.gaussian_blur(x, [9, 9], [float(sigma[k])] * 2)
                else:
                    x = TF.solarize(x, 128 / 255)
            torch.testing.assert_close(out[k], (x - MEAN[0]) / STD[0], atol=5e-4, rtol=0, msg=what)


def _rate_ok(flags: torch.Tensor, p: float) -> bool:
    """Empirical rate within 4 binomial standard deviations of ``p``."""
    n = flags.numel()
    return (
        abs(flags.float().mean().item() - p) <= 4 * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-12
    )


def test_parameter_rates_and_ranges_match_the_per_image_pipeline():
    b = 3000
    reference = DataAugmentationDINO(**KWARGS)
    jitter_apply, grayscale = reference.global_transfo1.transforms[0].transforms
    color_jitter = jitter_apply.transforms[0]
    blur_p = [
        reference.global_transfo1.transforms[1].p,
        reference.global_transfo2.transforms[1].p,
        reference.local_transfo.transforms[1].p,
    ]
    solarize_p = reference.global_transfo2.transforms[2].p
    flip_p = reference.geometric_augmentation_global.transforms[1].p
    sigma_range = reference.local_transfo.transforms[1].transforms[0].sigma

    sizes = torch.tensor([[375, 500]] * b)
    g, loc = BatchedDataAugmentationDINO(**KWARGS).sample_params(
        sizes, torch.Generator().manual_seed(0)
    )
    first, second = slice(0, b), slice(b, 2 * b)
    assert len(loc.flip) == 3 * b
    for params in (g, loc):
        assert _rate_ok(params.flip, flip_p)
        assert _rate_ok(params.jitter, jitter_apply.p)
        assert _rate_ok(params.grayscale, grayscale.p)
        for column, name in enumerate(("brightness", "contrast", "saturation", "hue")):
            low, high = getattr(color_jitter, name)
            values = params.jitter_factors[:, column]
            width = high - low
            assert (
                low <= values.min() < low + 0.01 * width
                and high - 0.01 * width < values.max() <= high
            ), name
        assert (
            sigma_range[0] <= params.blur_sigma.min() and params.blur_sigma.max() <= sigma_range[1]
        )
        # Every order of the four adjustments is equally likely.
        counts = np.unique(params.jitter_order.numpy(), axis=0, return_counts=True)[1]
        assert len(counts) == 24 and counts.min() > 0.6 * len(params.flip) / 24
    assert _rate_ok(g.blur[first], blur_p[0]) and _rate_ok(g.blur[second], blur_p[1])
    assert _rate_ok(loc.blur, blur_p[2])
    assert (
        not g.solarize[first].any()
        and _rate_ok(g.solarize[second], solarize_p)
        and not loc.solarize.any()
    )
    for params, (low, high) in (
        (g, KWARGS["global_crops_scale"]),
        (loc, KWARGS["local_crops_scale"]),
    ):
        area = (params.boxes[:, 2] * params.boxes[:, 3]).double() / (375 * 500)
        assert low * 0.97 <= area.min() < low * 1.1 and high * 0.9 < area.max() <= high * 1.03


def test_parameters_of_different_crops_are_independent():
    b = 4000
    g, loc = BatchedDataAugmentationDINO(**KWARGS).sample_params(
        torch.tensor([[64, 64]] * b), torch.Generator().manual_seed(1)
    )
    bound = 4 / math.sqrt(b)

    def corr(a: torch.Tensor, c: torch.Tensor) -> float:
        return float(np.corrcoef(a.double().numpy(), c.double().numpy())[0, 1])

    area = (g.boxes[:, 2] * g.boxes[:, 3]).double()
    # The two global crops of one image, and neighbouring images.
    assert abs(corr(area[:b], area[b:])) < bound and abs(corr(area[: b - 1], area[1:b])) < bound
    assert (
        abs(corr(g.flip[:b], g.flip[b:])) < bound
        and abs(corr(loc.flip[:b], loc.flip[b : 2 * b])) < bound
    )
    assert abs(corr(g.jitter_factors[:b, 0], g.jitter_factors[b:, 0])) < bound
    assert abs(corr(g.grayscale[:b], g.grayscale[b:])) < bound
    # Different parameters of one crop.
    assert abs(corr(g.jitter_factors[:, 0], g.jitter_factors[:, 1])) < bound / math.sqrt(2)


def test_paired_crops_are_identical_for_identical_inputs_and_follow_the_images_otherwise():
    images = _images(5, seed=2)
    augmentation = BatchedDataAugmentationDINO(**KWARGS)
    ragged = RaggedImages.from_images(images)
    same = augmentation(
        ragged, torch.Generator().manual_seed(4), paired=RaggedImages.from_images(images)
    )
    assert same["global_crops_paired"].shape == same["global_crops"].shape == (10, 3, 32, 32)
    assert torch.equal(same["global_crops_paired"], same["global_crops"])
    assert same["local_crops"].shape == (15, 3, 16, 16)
    other = augmentation(
        ragged, torch.Generator().manual_seed(4), paired=RaggedImages.from_images(_images(5, 9))
    )
    assert torch.equal(
        other["global_crops"], same["global_crops"]
    )  # same generator seed, same crops
    assert not torch.equal(other["global_crops_paired"], same["global_crops"])


def test_paired_images_of_another_size_are_rejected():
    images = _images(2)
    with pytest.raises(ValueError, match="differ in size"):
        BatchedDataAugmentationDINO(**KWARGS)(
            RaggedImages.from_images(images),
            paired=RaggedImages.from_images([im[:, 1:] for im in images]),
        )


def test_crops_depend_only_on_the_generator_seed():
    ragged = RaggedImages.from_images(_images(4))
    augmentation = BatchedDataAugmentationDINO(**KWARGS)
    a, b, c = (augmentation(ragged, torch.Generator().manual_seed(s)) for s in (7, 7, 8))
    assert torch.equal(a["global_crops"], b["global_crops"]) and torch.equal(
        a["local_crops"], b["local_crops"]
    )
    assert not torch.equal(a["global_crops"], c["global_crops"])


def test_crop_boxes_are_drawn_inside_their_own_image_in_crop_major_order():
    sizes = torch.tensor([[20, 90], [90, 20], [40, 40]])
    g, loc = BatchedDataAugmentationDINO(**KWARGS).sample_params(
        sizes, torch.Generator().manual_seed(0)
    )
    for params, n_crops in ((g, 2), (loc, KWARGS["local_crops_number"])):
        expected_sizes = sizes.repeat(n_crops, 1)
        assert (params.boxes[:, 0] + params.boxes[:, 2] <= expected_sizes[:, 0]).all()
        assert (params.boxes[:, 1] + params.boxes[:, 3] <= expected_sizes[:, 1]).all()


def test_sample_crop_params_uses_the_per_crop_probabilities():
    n = 2000
    blur_p = torch.tensor([0.0, 1.0]).repeat_interleave(n // 2)
    params = sample_crop_params(
        torch.tensor([[32, 32]] * n),
        (0.5, 1.0),
        blur_p,
        1 - blur_p,
        torch.Generator().manual_seed(0),
    )
    assert torch.equal(params.blur, blur_p > 0) and torch.equal(params.solarize, blur_p == 0)


def test_decoded_image_is_a_uint8_rgb_tensor_and_rejects_mismatched_pairs():
    decode = DecodedImage()
    gray = Image.fromarray(np.arange(12 * 10, dtype=np.uint8).reshape(12, 10))
    out = decode(gray)["image"]
    assert out.dtype == torch.uint8 and out.shape == (3, 12, 10) and type(out) is torch.Tensor
    assert torch.equal(out[0], torch.from_numpy(np.array(gray))) and torch.equal(out[0], out[2])
    pair = decode(gray, paired_image=gray)
    assert torch.equal(pair["paired_image"], pair["image"])
    with pytest.raises(ValueError, match="same height and width"):
        decode(gray, paired_image=gray.resize((10, 10)))


def test_hue_shift_equals_torchvision_for_any_factor_including_grey_and_pure_colours():
    from dinov2.data.batched_augmentations import _adjust_hue

    x = torch.rand(7, 3, 6, 5, generator=torch.Generator().manual_seed(3))
    x[:, :, 0, 0] = 0.5  # grey: hue undefined, must stay grey
    x[:, :, 0, 1] = torch.tensor([1.0, 0.0, 0.0])  # pure red, on a sector boundary
    x[:, :, 0, 2] = torch.tensor([0.2, 0.9, 0.9])  # two equal maxima
    factors = torch.tensor([-0.5, -0.3, -0.1, 0.0, 0.1, 0.25, 0.5])
    out = _adjust_hue(x, factors)
    for k in range(len(factors)):
        torch.testing.assert_close(
            out[k], TF.adjust_hue(x[k], float(factors[k])), atol=1e-5, rtol=0
        )


def test_geometry_equals_the_per_image_pipelines_own_crops_for_the_same_draws():
    # The reference geometry (DataAugmentationDINO's RandomResizedCrop + flip) under a seed, and its
    # draws replayed (torchvision's get_params, then the flip's torch.rand) for the batched kernel.
    reference = DataAugmentationDINO(**{**KWARGS, "global_crops_size": 24})
    normalize = make_normalize_transform()
    flips = []
    photos = _photos(6)
    for seed in range(12):
        image = photos[seed % len(photos)]
        torch.manual_seed(seed)
        expected = normalize(reference.geometric_augmentation_global(reference.to_image(image)))
        torch.manual_seed(seed)
        box = torch.tensor(
            [
                v2.RandomResizedCrop.get_params(
                    image, list(KWARGS["global_crops_scale"]), [3 / 4, 4 / 3]
                )
            ]
        )
        flip = torch.rand(1) < 0.5
        flips.append(bool(flip))
        out = augment_crops(
            RaggedImages.from_images([image]),
            torch.arange(1),
            _plain_params(box, flip),
            24,
            MEAN,
            STD,
        )
        grey_levels = ((out[0] - expected) * STD[0] * 255).abs()
        assert grey_levels.max() <= MAX_GREY_LEVELS and grey_levels.mean() <= MEAN_GREY_LEVELS, seed
    assert any(flips) and not all(flips)
