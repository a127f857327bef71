"""What shows DINO collapse, per iteration, and a warning when a run stays collapsed.

Two failure modes of the DINO objective (Caron et al. 2021, section 5.3) are visible in the
teacher's targets ``p`` (``(n, K)`` probabilities over ``K`` prototypes, one row per global crop):

- **uniform collapse**: every target is (close to) uniform. The per-crop entropy
  ``mean_i H(p_i)`` sits at its maximum ``log K`` and the DINO cross-entropy, which is at least that
  entropy, sits at ``log K`` too: the student is asked to predict nothing.
- **dominant-prototype collapse**: every crop gets the same sharp target. The per-crop entropy is
  low but the entropy of the batch-mean target ``H(mean_i p_i)`` is low as well.

A healthy run has a low per-crop entropy and a high batch-mean entropy. :func:`teacher_diagnostics`
computes both (in nats) for the training metrics; :class:`CollapseMonitor` warns once a run's DINO
loss has stayed within ``rel_tol`` of ``log K`` (or its per-crop entropy within ``rel_tol`` of its
maximum) for ``patience`` consecutive iterations. docs/collapse.md explains why small images
collapse and the recipe that avoids it.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

logger = logging.getLogger("dinov2")


@torch.no_grad()
def teacher_diagnostics(targets: Tensor) -> dict[str, Tensor]:
    """``{"teacher_entropy", "teacher_marginal_entropy"}`` (scalars, nats) of targets ``(..., K)``.

    ``teacher_entropy`` = mean over crops of ``H(p_i)``; ``teacher_marginal_entropy`` = ``H(mean_i
    p_i)``. Both lie in ``[0, log K]``.
    """
    p = targets.reshape(-1, targets.shape[-1]).float()
    per_crop = -(p * p.clamp_min(1e-12).log()).sum(dim=-1).mean()
    mean = p.mean(dim=0)
    marginal = -(mean * mean.clamp_min(1e-12).log()).sum()
    return {"teacher_entropy": per_crop, "teacher_marginal_entropy": marginal}


class CollapseMonitor:
    """Flags a run whose DINO targets stay (almost) uniform for ``patience`` iterations in a row.

    ``update(metrics)`` takes one iteration's logged metrics (``dino_local_crops_loss`` +
    ``dino_global_crops_loss`` is the mean cross-entropy over crop pairs, ``teacher_entropy`` as
    above) and returns True while the run counts as collapsed; the first time it logs a warning
    naming what to change. ``patience <= 0`` disables it.
    """

    def __init__(self, n_prototypes: int, patience: int, rel_tol: float = 0.01):
        self.log_k = math.log(n_prototypes)
        self.patience = patience
        self.rel_tol = rel_tol
        self.streak = 0
        self.warned = False

    def near_uniform(self, metrics: dict[str, float]) -> bool:
        dino = metrics.get("dino_local_crops_loss", 0.0) + metrics.get(
            "dino_global_crops_loss", 0.0
        )
        close = [abs(dino - self.log_k) <= self.rel_tol * self.log_k] if dino > 0 else []
        if "teacher_entropy" in metrics:
            close.append(metrics["teacher_entropy"] >= (1 - self.rel_tol) * self.log_k)
        return any(close)

    def update(self, metrics: dict[str, float], iteration: int) -> bool:
        if self.patience <= 0:
            return False
        self.streak = self.streak + 1 if self.near_uniform(metrics) else 0
        collapsed = self.streak >= self.patience
        if collapsed and not self.warned:
            self.warned = True
            logger.warning(
                "uniform collapse: for %d iterations up to iteration %d the "
                "DINO targets were uniform (loss or teacher "
                "entropy within %.0f%% of log K = %.3f); the backbone is "
                "learning nothing. See docs/collapse.md "
                "(small images: larger crops, layerscale, a lower teacher temperature)",
                self.streak,
                iteration,
                100 * self.rel_tol,
                self.log_k,
            )
        return collapsed
