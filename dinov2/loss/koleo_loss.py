"""KoLeo regularizer (Sablayrolles et al., 2018, "Spreading vectors for similarity search").

Kozachenko-Leonenko differential-entropy estimator on L2-normalised features: pushes every sample
away from its nearest neighbour in the batch. Computed in float32 whatever the autocast context.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KoLeoLoss(nn.Module):
    """``KoLeoLoss()(student_output)``: (B, D) features -> scalar
    ``-mean_b log(||x_b - x_nn(b)|| + eps)``."""

    @staticmethod
    def pairwise_NNs_inner(x: torch.Tensor) -> torch.Tensor:
        """(B, D) L2-normalised rows -> (B,) index of each row's nearest other row.

        For unit vectors the largest inner product is the smallest distance; the diagonal is set
        to -1 (below any inner product of unit vectors but -1 itself) so a row never picks itself.
        """
        dots = x @ x.t()
        dots.fill_diagonal_(-1.0)
        return dots.argmax(dim=1)

    def forward(self, student_output: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        # Distances between nearly-identical unit vectors underflow in bf16/fp16: force float32.
        with torch.autocast(device_type=student_output.device.type, enabled=False):
            x = F.normalize(student_output.float(), p=2, dim=-1, eps=eps)
            with torch.no_grad():
                nn_index = self.pairwise_NNs_inner(x)
            distances = F.pairwise_distance(x, x[nn_index], p=2, eps=eps)
            return -torch.log(distances + eps).mean()
