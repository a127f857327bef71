"""iBOTPatchLoss against hand-derived references: per-image weighting, padding, centring,
Sinkhorn."""

from __future__ import annotations

import math

import pytest
import torch

from dinov2.loss import iBOTPatchLoss


def _neg_cross_entropy(t_row: list[float], s_row: list[float], temp: float) -> float:
    z = [v / temp for v in s_row]
    log_norm = math.log(sum(math.exp(v) for v in z))
    return -sum(tk * (zk - log_norm) for tk, zk in zip(t_row, z))


# Two images of three patches; image 0 has patches 0 and 1 masked, image 1 only patch 2.
MASKS = torch.tensor([[True, True, False], [False, False, True]])
STUDENT_MASKED = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, -0.3]])
TEACHER_MASKED = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])


def _expected_loss() -> float:
    ce = [
        _neg_cross_entropy(TEACHER_MASKED[m].tolist(), STUDENT_MASKED[m].tolist(), 0.1)
        for m in range(3)
    ]
    # Each image weighs 1: mean over its own masked patches, then mean over the two images.
    return ((ce[0] + ce[1]) / 2 + ce[2]) / 2


def test_forward_masked_averages_per_image_then_over_images():
    loss = iBOTPatchLoss(patch_out_dim=2)(STUDENT_MASKED, TEACHER_MASKED, MASKS)
    assert loss.item() == pytest.approx(_expected_loss(), rel=1e-5)


def test_forward_masked_ignores_padding_rows_beyond_n_masked_patches():
    padded_s = torch.cat([STUDENT_MASKED, torch.randn(2, 2)])
    padded_t = torch.cat([TEACHER_MASKED, torch.rand(2, 2)])
    weights = torch.tensor([0.5, 0.5, 1.0])
    loss = iBOTPatchLoss(patch_out_dim=2).forward_masked(
        padded_s, padded_t, MASKS, n_masked_patches=3, masks_weight=weights
    )
    assert loss.item() == pytest.approx(_expected_loss(), rel=1e-5)


def test_explicit_masks_weight_changes_the_weighting():
    ce = [
        _neg_cross_entropy(TEACHER_MASKED[m].tolist(), STUDENT_MASKED[m].tolist(), 0.1)
        for m in range(3)
    ]
    weights = torch.tensor([1.0, 0.0, 2.0])
    loss = iBOTPatchLoss(patch_out_dim=2).forward_masked(
        STUDENT_MASKED, TEACHER_MASKED, MASKS, masks_weight=weights
    )
    assert loss.item() == pytest.approx((ce[0] + 2 * ce[2]) / 2, rel=1e-5)


def test_dense_forward_equals_masked_forward():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 2)
    teacher = torch.softmax(torch.randn(2, 3, 2), dim=-1)
    loss_fn = iBOTPatchLoss(patch_out_dim=2)
    dense = loss_fn(student, teacher, MASKS)
    masked = loss_fn.forward_masked(student[MASKS], teacher[MASKS], MASKS)
    torch.testing.assert_close(dense, masked)


def test_center_is_ema_of_mean_over_images_of_token_means():
    loss = iBOTPatchLoss(patch_out_dim=2, center_momentum=0.9)
    tokens = torch.tensor(
        [[[1.0, 0.0], [3.0, 2.0]], [[0.0, 0.0], [0.0, 4.0]]]
    )  # token means (2,1), (0,2)
    loss.update_center(tokens)
    probs = loss.softmax_center_teacher(torch.zeros(1, 1, 2), teacher_temp=1.0)
    torch.testing.assert_close(loss.center, torch.tensor([[[0.1, 0.15]]]))
    expected = torch.softmax(-torch.tensor([0.1, 0.15]), dim=0)
    torch.testing.assert_close(probs, expected.view(1, 1, 2))


def test_sinkhorn_rows_are_distributions_and_count_tensor_is_untouched():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    n_masked = torch.tensor([5])
    q = iBOTPatchLoss(patch_out_dim=3).sinkhorn_knopp_teacher(
        logits, 0.5, n_masked, n_iterations=200
    )
    torch.testing.assert_close(q.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(q.sum(dim=0), torch.full((3,), 5 / 3), rtol=1e-4, atol=1e-4)
    assert n_masked.item() == 5


def test_sinkhorn_on_a_batch_without_masked_patches_returns_no_rows():
    q = iBOTPatchLoss(patch_out_dim=3).sinkhorn_knopp_teacher(
        torch.zeros(0, 3), 0.07, torch.tensor([0])
    )
    assert q.shape == (0, 3)
