"""The Neighbor2Neighbor loss and its regularizer weight schedule.

With ``g1, g2`` the two neighbour sub-samplers (:mod:`neighbor2neighbor.subsample`) and ``f`` the
denoiser::

    L = Lambda1 · mean((f(g1(y)) − g2(y))²)
      + Lambda2 · γ · mean((f(g1(y)) − g2(y) − (g1(f(y)) − g2(f(y))))²)

where ``f(y)`` is computed without gradient (the reference detaches it) and
``γ = epoch / n_epoch · increase_ratio`` grows linearly with the 1-based epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from neighbor2neighbor.subsample import generate_subimages


def gamma_schedule(epoch: int, n_epoch: int, increase_ratio: float = 2.0) -> float:
    """Regularizer weight γ of the 1-based ``epoch``: ``epoch / n_epoch * increase_ratio``."""
    if n_epoch <= 0:
        raise ValueError(f"n_epoch must be > 0, got {n_epoch}")
    return epoch / n_epoch * increase_ratio


@dataclass
class N2NLoss:
    """The total loss (to back-propagate) and its two terms (unweighted means, for logging)."""

    total: torch.Tensor
    rec: torch.Tensor
    reg: torch.Tensor


def n2n_loss(
    f: Callable[[torch.Tensor], torch.Tensor],
    noisy: torch.Tensor,
    mask1: torch.Tensor,
    mask2: torch.Tensor,
    gamma: float,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
) -> N2NLoss:
    """Neighbor2Neighbor loss of denoiser ``f`` on ``noisy`` (N, C, H, W), H and W even.

    ``mask1``/``mask2`` (N, H/2, W/2, 4) come from :func:`generate_mask_pair`. ``f`` is called
    twice: on the full image without gradient, and on ``g1(y)`` (N, C, H/2, W/2) with gradient.
    Means are taken in float32 so that a bf16 autocast forward does not degrade the loss.
    """
    sub1 = generate_subimages(noisy, mask1)
    sub2 = generate_subimages(noisy, mask2)
    with torch.no_grad():
        denoised = f(noisy)
    exp_diff = (generate_subimages(denoised, mask1) - generate_subimages(denoised, mask2)).float()
    diff = f(sub1).float() - sub2.float()
    rec = torch.mean(diff**2)
    reg = torch.mean((diff - exp_diff) ** 2)
    return N2NLoss(total=lambda1 * rec + lambda2 * gamma * reg, rec=rec.detach(), reg=reg.detach())
