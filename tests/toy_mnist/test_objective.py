"""The toy objective: covariance penalty and invariance against hand-derived values."""

from __future__ import annotations

import torch

from toy_mnist.objective import Encoder, covariance, covariance_penalty, invariance_loss, ssl_loss


def test_covariance_penalty_is_zero_for_whitened_embeddings() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, generator=g, dtype=torch.float64
    )
    zc = z - z.mean(0)
    # whiten with the inverse Cholesky factor of the covariance (divided by n): Cov(zw) = I exactly
    chol = torch.linalg.cholesky(zc.T @ zc / len(z))
    zw = torch.linalg.solve_triangular(chol, zc.T, upper=False).T + 3.0  # an offset must not matter
    assert covariance_penalty(z) > 1.0
    assert covariance_penalty(zw).item() < 1e-20


def test_covariance_divides_by_n_as_the_reference_and_penalty_matches_hand_computation() -> None:
    # rows (1,0), (0,1), (1,1), (0,0): mean (1/2, 1/2), centred entries ±1/2, squares sum to 1 per
    # column, cross products cancel: Cov = I / 4 with the n = 4 divisor (n - 1 would give I / 3),
    # ||Cov - I||² = 2 (3/4)²
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(covariance(z), torch.eye(2, dtype=torch.float64) / 4)
    assert abs(covariance_penalty(z).item() - 9 / 8) < 1e-12
    # a correlated case: rows (0,0), (2,2): centred ±1, Cov = [[1, 1], [1, 1]] → 0 + 1 + 1 + 0 = 2
    z = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    assert abs(covariance_penalty(z).item() - 2.0) < 1e-12


def test_invariance_is_mean_squared_distance_and_loss_weights_the_penalty_on_both_views() -> None:
    z1 = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    z2 = torch.tensor([[3.0, 4.0], [1.0, 1.0]], dtype=torch.float64)
    assert invariance_loss(z1, z2).item() == 12.5  # (25 + 0) / 2
    expected = 12.5 + 0.5 * covariance_penalty(torch.cat([z1, z2])).item()
    assert abs(ssl_loss(z1, z2).item() - expected) < 1e-12


def test_encoder_is_a_bias_free_784_128_32_mlp_with_the_reference_keys_and_seeded_init() -> None:
    enc = Encoder(torch.Generator().manual_seed(3))
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert shapes == {
        "net.0.weight": (128, 784),
        "net.2.weight": (32, 128),
    }  # the authors' published keys
    assert enc(torch.rand(5, 28, 28)).shape == (5, 32)
    again = Encoder(torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(enc.parameters(), again.parameters()))
    # ReLU between the layers (and only there): negative hidden pre-activations are dropped
    x = torch.rand(4, 28, 28)
    w1, w2 = enc.net[0].weight, enc.net[2].weight
    with torch.no_grad():
        torch.testing.assert_close(enc(x), (x.flatten(1) @ w1.T).clamp_min(0) @ w2.T)
        assert not torch.allclose(enc(x), x.flatten(1) @ w1.T @ w2.T)
