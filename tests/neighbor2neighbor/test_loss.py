"""Neighbor2Neighbor loss against hand-computed values, and the gamma schedule."""

from __future__ import annotations

import pytest
import torch

from neighbor2neighbor.loss import gamma_schedule, n2n_loss


def fixed_masks() -> tuple[torch.Tensor, torch.Tensor]:
    """g1 takes the top-left pixel of every 2x2 cell, g2 the top-right one."""
    mask1 = torch.zeros(1, 2, 2, 4, dtype=torch.bool)
    mask2 = torch.zeros(1, 2, 2, 4, dtype=torch.bool)
    mask1[..., 0] = True
    mask2[..., 1] = True
    return mask1, mask2


# y = arange(16) as a 4x4 image: g1(y) = [[0, 2], [8, 10]], g2(y) = [[1, 3], [9, 11]].
Y = torch.arange(16.0).reshape(1, 1, 4, 4)


def test_loss_equals_the_hand_computed_value_for_f_doubling():
    # f(x) = 2x: f(g1) - g2 = [[-1, 1], [7, 9]] → rec = (1 + 1 + 49 + 81) / 4 = 33;
    # g1(f(y)) - g2(f(y)) = -2 everywhere → diff - exp_diff = g2 → reg = (1 + 9 + 81 + 121) / 4 =
    # 53.
    losses = n2n_loss(lambda x: 2 * x, Y, *fixed_masks(), gamma=0.5, lambda1=2.0, lambda2=3.0)
    assert losses.rec.item() == pytest.approx(33.0)
    assert losses.reg.item() == pytest.approx(53.0)
    assert losses.total.item() == pytest.approx(2 * 33 + 3 * 0.5 * 53)


def test_identity_denoiser_has_zero_regularizer():
    losses = n2n_loss(lambda x: x, Y, *fixed_masks(), gamma=1.0)
    assert losses.reg.item() == 0.0
    assert losses.rec.item() == pytest.approx(1.0)  # g1 - g2 = -1 everywhere


def test_gradient_flows_only_through_f_of_the_first_subimage():
    # f(x) = w x with w = 2; f(y) is a constant (no grad), so
    # dL/dw = mean(2 (w g1 - g2) g1) + gamma * mean(2 g2 g1) = 74 + 0.5 * 94 = 121.
    w = torch.tensor(2.0, requires_grad=True)
    n2n_loss(lambda x: w * x, Y, *fixed_masks(), gamma=0.5).total.backward()
    assert w.grad.item() == pytest.approx(121.0)


def test_gamma_grows_linearly_to_increase_ratio():
    assert gamma_schedule(1, 100) == pytest.approx(0.02)
    assert gamma_schedule(50, 100) == pytest.approx(1.0)
    assert gamma_schedule(100, 100) == pytest.approx(2.0)
    assert gamma_schedule(3, 6, increase_ratio=1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        gamma_schedule(1, 0)
