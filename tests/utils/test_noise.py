"""Noise models: spec parsing and the statistics of each family against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from utils.noise import (
    PAPER_SPECS,
    NoiseSpec,
    add_noise,
    add_noise_uint8,
    parse_noise_spec,
    snr_db,
)

N_SIDE = 256  # a flat 3×256×256 image: ~200k samples, so 5 standard errors is a tight tolerance


def flat(value: float) -> torch.Tensor:
    return torch.full((3, N_SIDE, N_SIDE), value, dtype=torch.float64)


def assert_mean_var(y: torch.Tensor, mean: float, var: float) -> None:
    n = y.numel()
    se_mean = math.sqrt(var / n)
    # the variance estimator's standard error, sqrt(2/(n-1))·var, is exact for Gaussians and a fair
    # bound for the mildly non-Gaussian residuals here; 6 SE keeps the false-alarm rate negligible
    se_var = var * math.sqrt(2.0 / (n - 1)) * 1.5
    assert abs(y.mean().item() - mean) < 6 * se_mean, (y.mean().item(), mean)
    assert abs(y.var().item() - var) < 6 * se_var, (y.var().item(), var)


@pytest.mark.parametrize("spec", PAPER_SPECS)
def test_parse_accepts_the_nine_paper_levels_and_round_trips(spec: str) -> None:
    parsed = parse_noise_spec(spec)
    assert parsed.tag == spec
    assert parse_noise_spec(parsed.tag) == parsed


@pytest.mark.parametrize(
    "bad", ["gauss_-3", "foo_1", "shot_0", "gauss", "gauss_abc", "", "speckle_nan", "gauss__3"]
)
def test_parse_rejects_bad_specs_listing_the_valid_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="valid forms: gauss_<sigma_255"):
        parse_noise_spec(bad)


def test_spec_tags_are_canonical() -> None:
    assert NoiseSpec("gauss", 100.0).tag == "gauss_100"
    assert NoiseSpec("shot", 3).tag == "shot_3"
    assert NoiseSpec("speckle", 1).tag == "speckle_1.0"
    assert parse_noise_spec("gauss_12.5").tag == "gauss_12.5"


def test_gaussian_residual_has_zero_mean_and_sigma_255_over_255_std() -> None:
    g = torch.Generator().manual_seed(0)
    y = (
        add_noise(flat(0.5), "gauss_20", g) - 0.5
    )  # 6.4 sigma from the clip bounds: unclipped formulas hold
    assert_mean_var(y, 0.0, (20 / 255) ** 2)


def test_gaussian_clipping_matches_the_censored_normal() -> None:
    g = torch.Generator().manual_seed(1)
    x, sigma = 0.5, 255 / 255
    y = add_noise(flat(x), "gauss_255", g)
    # E and Var of clip(N(x, sigma), 0, 1), integrated numerically from the normal density
    grid = np.linspace(-8, 8, 200_001)
    values = np.clip(x + sigma * grid, 0, 1)
    weights = stats.norm.pdf(grid) * (grid[1] - grid[0])
    mean = float(np.sum(values * weights))
    var = float(np.sum((values - mean) ** 2 * weights))
    assert_mean_var(y, mean, var)


def test_shot_noise_is_poisson_rate_lambda_x_over_lambda() -> None:
    g = torch.Generator().manual_seed(2)
    x, lam = 0.3, 100.0  # P(Poisson(30) > 100) is negligible: no clipping
    y = add_noise(flat(x), f"shot_{lam:g}", g)
    assert_mean_var(y, x, x / lam)
    assert torch.allclose(y * lam, (y * lam).round(), atol=1e-9), "values are counts / lambda"


def test_shot_1_is_censored_poisson() -> None:
    g = torch.Generator().manual_seed(3)
    x = 0.5  # Poisson(0.5) counts, clipped at 1: the result is 0 w.p. e^-0.5, else 1
    y = add_noise(flat(x), "shot_1", g)
    p1 = 1 - math.exp(-x)
    assert set(torch.unique(y).tolist()) == {0.0, 1.0}
    assert_mean_var(y, p1, p1 * (1 - p1))


def test_speckle_residual_std_is_c_times_intensity() -> None:
    g = torch.Generator().manual_seed(4)
    x, c = 0.5, 0.2
    y = add_noise(flat(x), f"speckle_{c}", g) - x
    assert_mean_var(y, 0.0, (x * c) ** 2)


def test_black_pixels_get_no_multiplicative_or_shot_noise() -> None:
    zeros = torch.zeros(2, 3, 8, 8)
    assert torch.equal(add_noise(zeros, "speckle_1.0"), zeros)
    assert torch.equal(add_noise(zeros, "shot_1"), zeros)


def test_uint8_path_truncates_after_scaling_like_the_paper_generator() -> None:
    rng = np.random.default_rng(0)
    img = np.full((N_SIDE, N_SIDE, 3), 128, dtype=np.uint8)
    out = add_noise_uint8(img, "gauss_20", rng)
    assert out.dtype == np.uint8 and out.shape == img.shape
    residual = torch.from_numpy(out.astype(np.float64) - 128.0)
    # truncation of a continuous value removes U(0, 1) on average: mean -1/2, variance sigma² + 1/12
    assert_mean_var(residual, -0.5, 20.0**2 + 1.0 / 12.0)


def test_uint8_path_is_deterministic_per_seed_and_leaves_the_input_alone() -> None:
    img = np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    copy = img.copy()
    a = add_noise_uint8(img, "speckle_0.7", np.random.default_rng(7))
    b = add_noise_uint8(img, "speckle_0.7", np.random.default_rng(7))
    c = add_noise_uint8(img, "speckle_0.7", np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(img, copy)


def test_torch_batches_are_reproducible_with_a_generator_and_stay_in_range() -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for spec in PAPER_SPECS:
        a = add_noise(x, spec, torch.Generator().manual_seed(9))
        b = add_noise(x, spec, torch.Generator().manual_seed(9))
        assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
        assert a.min() >= 0 and a.max() <= 1
        assert not torch.equal(a, x)


def test_integer_tensors_are_refused() -> None:
    with pytest.raises(TypeError, match="float tensor"):
        add_noise(torch.zeros(3, 4, 4, dtype=torch.uint8), "gauss_50")


def test_snr_db_matches_a_hand_computation() -> None:
    clean = np.ones(4)
    noisy = clean + np.array([0.5, 0, 0, 0])
    assert snr_db(noisy, clean) == pytest.approx(10 * math.log10(4 / 0.25))
    assert snr_db(torch.from_numpy(clean), torch.from_numpy(clean)) == math.inf
    assert snr_db(add_noise(flat(0.5), "gauss_100"), flat(0.5)) < snr_db(
        add_noise(flat(0.5), "gauss_50"), flat(0.5)
    )
