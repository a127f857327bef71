"""KoLeoLoss on hand-placed points: -mean log distance to the nearest neighbour, in float32."""

from __future__ import annotations

import math

import pytest
import torch

from dinov2.loss import KoLeoLoss

DEG = math.pi / 180
# Unit vectors at 0, 90 and 30 degrees: nearest neighbours 0<->30 (chord 2 sin 15deg) and 90->30
# (chord 1).
ANGLES = [0.0, 90 * DEG, 30 * DEG]
EXPECTED = -(2 * math.log(2 * math.sin(15 * DEG)) + math.log(1.0)) / 3


def _points(scales=(1.0, 1.0, 1.0)) -> torch.Tensor:
    return torch.tensor([[s * math.cos(a), s * math.sin(a)] for s, a in zip(scales, ANGLES)])


def test_three_points_give_minus_mean_log_nearest_distance():
    assert KoLeoLoss()(_points()).item() == pytest.approx(EXPECTED, abs=1e-6)


def test_features_are_l2_normalised_first():
    assert KoLeoLoss()(_points(scales=(3.0, 0.5, 10.0))).item() == pytest.approx(EXPECTED, abs=1e-6)


def test_point_never_picks_itself_as_neighbour():
    x = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    nn_index = KoLeoLoss.pairwise_NNs_inner(x)
    assert (nn_index != torch.arange(6)).all()


def test_bf16_input_under_autocast_is_computed_in_float32():
    x = _points().to(torch.bfloat16).requires_grad_(True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = KoLeoLoss()(x)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(EXPECTED, abs=2e-2)
    loss.backward()
    assert torch.isfinite(x.grad).all()
