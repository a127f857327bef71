"""The toy encoder and its self-supervised objective (invariance + covariance penalty).

``loss = invariance(z1, z2) + COV_WEIGHT * covariance_penalty(cat(z1, z2))`` with

- ``invariance = mean_i ||z1_i - z2_i||²`` (squared L2 distance summed over the D dims, averaged
  over the B pairs);
- ``covariance_penalty(z) = ||Cov(z) - I||_F²`` with ``Cov(z) = (z - z̄)ᵀ (z - z̄) / n``: the
  covariance of the ``n = 2B`` rows centred on their mean and divided by ``n`` (not ``n - 1``), as
  the authors' toy code computes it; full matrix, diagonal included.
"""

from __future__ import annotations

import torch
from torch import nn

IN_DIM = 28 * 28
HIDDEN_DIM = 128
EMBED_DIM = 32
COV_WEIGHT = 0.5


class Encoder(nn.Module):
    """MLP ``784 → 128 → 32`` without biases, ReLU between the layers: ``[B, 28, 28]`` →
    ``[B, 32]``.

    The layers live in ``net`` (``nn.Sequential``) so that the ``state_dict`` keys are the authors'
    (``net.0.weight`` ``[128, 784]``, ``net.2.weight`` ``[32, 128]``) and their published weights
    load strictly.
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(IN_DIM, HIDDEN_DIM, bias=False),
            nn.ReLU(),
            nn.Linear(HIDDEN_DIM, EMBED_DIM, bias=False),
        )
        if generator is not None:  # nn.Linear's default init, drawn from the run's own generator
            for layer in (self.net[0], self.net[2]):
                nn.init.kaiming_uniform_(layer.weight, a=5**0.5, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||z1_i - z2_i||²``; ``z1``, ``z2``: ``[B, D]`` → scalar."""
    return (z1 - z2).pow(2).sum(dim=1).mean()


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Covariance ``[D, D]`` of the rows of ``z`` ``[n, D]``: centred, divided by ``n`` (the
    reference's)."""
    zc = z - z.mean(dim=0, keepdim=True)
    return zc.T @ zc / z.shape[0]


def covariance_penalty(z: torch.Tensor) -> torch.Tensor:
    """``||Cov(z) - I||_F²`` for ``z`` ``[n, D]`` → scalar."""
    eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return (covariance(z) - eye).pow(2).sum()


def ssl_loss(z1: torch.Tensor, z2: torch.Tensor, cov_weight: float = COV_WEIGHT) -> torch.Tensor:
    """Invariance of the two views ``[B, D]`` plus ``cov_weight`` × the penalty on their ``[2B, D]``
    concatenation."""
    return invariance_loss(z1, z2) + cov_weight * covariance_penalty(torch.cat([z1, z2], dim=0))
