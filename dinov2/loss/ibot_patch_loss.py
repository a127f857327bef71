"""iBOT masked-patch loss: cross-entropy between teacher and student patch prototypes.

Same numerics as the official DINOv2 ``iBOTPatchLoss``: each image contributes the mean of its
masked-patch losses (``masks_weight`` = 1 / number of masked patches of that image), and the
total is divided by the number of images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dino_clstoken_loss import CenteredLoss, _all_reduce_sum, sinkhorn_knopp


def _cross_entropy_terms(t: torch.Tensor, s: torch.Tensor, temp: float) -> torch.Tensor:
    """sum_k t * log_softmax(s / temp) over the last dim (the *negative* cross-entropy)."""
    return torch.sum(t * F.log_softmax(s / temp, dim=-1), dim=-1)


def default_masks_weight(student_masks_flat: torch.Tensor) -> torch.Tensor:
    """(B, N) bool masks -> (M,) weights 1 / n_masked(image), one per masked patch in mask order."""
    per_image = 1.0 / student_masks_flat.sum(-1).clamp(min=1.0)
    return per_image.unsqueeze(-1).expand_as(student_masks_flat)[student_masks_flat]


class iBOTPatchLoss(CenteredLoss):
    """iBOT patch loss with teacher centring (official name and signature).

    Args:
        patch_out_dim: K, number of prototypes of the iBOT head.
        student_temp: student softmax temperature.
        center_momentum: EMA momentum of the teacher centre, shape (1, 1, K).
    """

    def __init__(self, patch_out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9):
        super().__init__((1, 1, patch_out_dim), student_temp, center_momentum)

    @torch.no_grad()
    def softmax_center_teacher(
        self, teacher_patch_tokens: torch.Tensor, teacher_temp: float
    ) -> torch.Tensor:
        """(..., K) teacher logits -> (..., K) softmax((t - center) / teacher_temp)."""
        self.apply_center_update()
        center = self.center.to(teacher_patch_tokens.device)
        return F.softmax((teacher_patch_tokens - center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def sinkhorn_knopp_teacher(
        self,
        teacher_output: torch.Tensor,
        teacher_temp: float,
        n_masked_patches_tensor: torch.Tensor,
        n_iterations: int = 3,
    ) -> torch.Tensor:
        """(M_local, K) masked-patch teacher logits -> (M_local, K) Sinkhorn-Knopp targets.

        ``n_masked_patches_tensor`` holds this rank's M; B of the algorithm is its sum over ranks.
        The caller's tensor is not modified (the official code all-reduces it in place).
        """
        n_global = n_masked_patches_tensor.clone()
        _all_reduce_sum(n_global)
        return sinkhorn_knopp(
            teacher_output, teacher_temp, n_global.to(torch.float32), n_iterations
        )

    def forward(
        self,
        student_patch_tokens: torch.Tensor,
        teacher_patch_tokens: torch.Tensor,
        student_masks_flat: torch.Tensor,
    ) -> torch.Tensor:
        """Dense form. student/teacher (B, N, K), masks (B, N) bool -> scalar loss."""
        loss = _cross_entropy_terms(teacher_patch_tokens, student_patch_tokens, self.student_temp)
        masks = student_masks_flat.float()
        loss = torch.sum(loss * masks, dim=-1) / masks.sum(dim=-1).clamp(min=1.0)
        return -loss.mean()

    def forward_masked(
        self,
        student_patch_tokens_masked: torch.Tensor,
        teacher_patch_tokens_masked: torch.Tensor,
        student_masks_flat: torch.Tensor,
        n_masked_patches: int | None = None,
        masks_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss on the masked patches only.

        Args:
            student_patch_tokens_masked: (M', K) student logits of masked patches (M' >= M,
                padded).
            teacher_patch_tokens_masked: (M', K) teacher targets (probabilities) of the same
                patches.
            student_masks_flat: (B, N) bool masks; B images.
            n_masked_patches: M, number of valid rows (the rest is padding up to ``upperbound``).
            masks_weight: (M,) per-patch weights; default 1 / n_masked of the patch's image.

        Returns:
            Scalar: -sum_m w_m * sum_k t[m,k] log_softmax(s[m]/temp)[k] / B.
        """
        loss = _cross_entropy_terms(
            teacher_patch_tokens_masked, student_patch_tokens_masked, self.student_temp
        )
        if masks_weight is None:
            masks_weight = default_masks_weight(student_masks_flat)
        if n_masked_patches is not None:
            loss = loss[:n_masked_patches]
        return -(loss * masks_weight).sum() / student_masks_flat.shape[0]

    @torch.no_grad()
    def update_center(self, teacher_patch_tokens: torch.Tensor) -> None:
        """Start the centre update with (B, N, K) raw teacher logits (per-image token mean)."""
        self.reduce_center_update(teacher_patch_tokens)

    @torch.no_grad()
    def reduce_center_update(self, teacher_patch_tokens: torch.Tensor) -> None:
        batch_sum = torch.sum(teacher_patch_tokens.mean(1), dim=0, keepdim=True)
        self._start_center_update(batch_sum, len(teacher_patch_tokens))
