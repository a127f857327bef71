"""DINO loss on the [CLS] token: cross-entropy between teacher targets and student predictions.

Same numerics as the official DINOv2 ``DINOLoss``: teacher targets are either centred and sharpened
softmaxes (``softmax_center_teacher``) or Sinkhorn-Knopp assignments (``sinkhorn_knopp_teacher``);
the centre is an EMA of the global batch mean of the raw teacher outputs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce_sum(x: torch.Tensor, async_op: bool = False):
    """Sum ``x`` in place over all ranks (no-op without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.all_reduce(x, async_op=async_op)
    return None


@torch.no_grad()
def sinkhorn_knopp(
    teacher_output: torch.Tensor,
    teacher_temp: float,
    n_samples_global: int | torch.Tensor,
    n_iterations: int,
) -> torch.Tensor:
    """Sinkhorn-Knopp assignments of samples to prototypes, distributed over all ranks.

    Args:
        teacher_output: (B_local, K) teacher logits of this rank.
        teacher_temp: softmax temperature of the teacher.
        n_samples_global: B, the number of samples over all ranks (columns of the global Q).
        n_iterations: row/column normalisation rounds (3 in DINOv2).

    Returns:
        (B_local, K) float32 assignments; each row sums to 1 (after the final column step).
    """
    # Q is K x B as in the SwAV paper. Shifting by the *global* max cancels in the first
    # normalisation but keeps exp() finite for large logits / small temperatures.
    logits = teacher_output.float() / teacher_temp
    # A rank can hold no rows (no masked patch in its iBOT batch): its shift must not win the MAX.
    shift = logits.max() if logits.numel() else torch.tensor(float("-inf"), device=logits.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(shift, op=dist.ReduceOp.MAX)
    q = torch.exp(logits - shift).t()
    n_prototypes = q.shape[0]

    total = q.sum()
    _all_reduce_sum(total)
    q /= total
    for _ in range(n_iterations):
        # Every prototype receives 1/K of the mass: row sums are global, hence the all-reduce.
        row_sums = q.sum(dim=1, keepdim=True)
        _all_reduce_sum(row_sums)
        q /= row_sums
        q /= n_prototypes
        # Every sample distributes 1/B of the mass: columns are local to this rank.
        q /= q.sum(dim=0, keepdim=True)
        q /= n_samples_global
    q *= n_samples_global
    return q.t()


class CenteredLoss(nn.Module):
    """Teacher centring shared by :class:`DINOLoss` and :class:`iBOTPatchLoss` (buffer ``center``).

    The centre update is started with the batch sum of the teacher's logits (all-reduced across
    ranks, asynchronously, as in the official code: it overlaps with the student forward) and
    applied, with momentum, at the next centring.
    """

    def __init__(self, center_shape: tuple[int, ...], student_temp: float, center_momentum: float):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(*center_shape))
        self.updated = True
        self.reduce_handle = None
        self.n_center_samples: int | None = None
        self.async_batch_center: torch.Tensor | None = None

    @torch.no_grad()
    def _start_center_update(self, batch_sum: torch.Tensor, n_samples: int) -> None:
        """``batch_sum``: the sum over this rank's ``n_samples`` of the per-sample teacher
        logits."""
        self.updated = False
        self.n_center_samples = n_samples
        self.async_batch_center = batch_sum
        self.reduce_handle = _all_reduce_sum(self.async_batch_center, async_op=True)

    @torch.no_grad()
    def apply_center_update(self) -> None:
        if self.updated:
            return
        if self.reduce_handle is not None:
            self.reduce_handle.wait()
            self.reduce_handle = None
        batch_center = self.async_batch_center / (self.n_center_samples * _world_size())
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)
        self.updated = True


class DINOLoss(CenteredLoss):
    """DINO [CLS] loss with teacher centring (official name and signature).

    Args:
        out_dim: K, number of prototypes of the DINO head.
        student_temp: student softmax temperature.
        center_momentum: EMA momentum of the teacher centre.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__((1, out_dim), student_temp, center_momentum)

    @torch.no_grad()
    def softmax_center_teacher(
        self, teacher_output: torch.Tensor, teacher_temp: float
    ) -> torch.Tensor:
        """(B, K) teacher logits -> (B, K) softmax((t - center) / teacher_temp)."""
        self.apply_center_update()
        return F.softmax((teacher_output - self.center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self, teacher_output: torch.Tensor, teacher_temp: float, n_iterations: int = 3
    ) -> torch.Tensor:
        """(B_local, K) teacher logits -> (B_local, K) Sinkhorn-Knopp targets; B = global batch
        size."""
        n_samples_global = teacher_output.shape[0] * _world_size()
        return sinkhorn_knopp(teacher_output, teacher_temp, n_samples_global, n_iterations)

    def forward(
        self,
        student_output_list: list[torch.Tensor],
        teacher_out_softmaxed_centered_list: list[torch.Tensor],
    ) -> torch.Tensor:
        """Sum over all (student, teacher) pairs of the batch-mean cross-entropy.

        Args:
            student_output_list: tensors (B, K) of student logits.
            teacher_out_softmaxed_centered_list: tensors (B, K) of teacher probabilities.

        Returns:
            Scalar: sum_{s,t} mean_b( -sum_k t[b,k] * log_softmax(s / student_temp)[b,k] ).
        """
        total_loss = 0.0
        for s in student_output_list:
            log_p = F.log_softmax(s / self.student_temp, dim=-1)
            for t in teacher_out_softmaxed_centered_list:
                total_loss = total_loss - torch.sum(t * log_p, dim=-1).mean()
        return total_loss

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """Start the centre update with (B, K) raw teacher logits; applied at the next centring."""
        self.reduce_center_update(teacher_output)

    @torch.no_grad()
    def reduce_center_update(self, teacher_output: torch.Tensor) -> None:
        self._start_center_update(
            torch.sum(teacher_output, dim=0, keepdim=True), len(teacher_output)
        )
