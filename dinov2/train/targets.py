"""Records passed between the stages of a training step, and the teacher-target computation.

:func:`compute_teacher_targets` turns a teacher backbone's output into DINO and iBOT targets. The
meta-architecture calls it with its EMA teacher; an extra loss module (the NCT anchor regularizer)
can call it with another backbone's output, other heads and its own centring state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dinov2.loss import DINOLoss, iBOTPatchLoss


@dataclass
class Batch:
    """A collated batch on the training device. ``B`` images, ``N`` patches per global crop.

    global_crops ``(2B, 3, Hg, Wg)`` crop-major; local_crops ``(n_local * B, 3, Hl, Wl)``;
    masks ``(2B, N)`` bool; mask_indices_list ``(M,)`` flat indices into ``(2B * N)``;
    masks_weight ``(M,)``; n_masked_patches ``M``; extras: any other tensors of the batch
    (e.g. ``collated_global_crops_paired`` for NCT), moved to the device.
    """

    global_crops: Tensor
    local_crops: Tensor
    masks: Tensor
    mask_indices_list: Tensor
    masks_weight: Tensor
    n_masked_patches: int
    n_masked_patches_tensor: Tensor
    upperbound: int
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.global_crops.shape[0] // 2

    @property
    def n_local_crops(self) -> int:
        return self.local_crops.shape[0] // self.batch_size

    @classmethod
    def from_collated(
        cls, images: dict[str, Any], device: torch.device, n_local_crops: int | None = None
    ) -> Batch:
        known = {
            "collated_global_crops",
            "collated_local_crops",
            "collated_masks",
            "mask_indices_list",
            "masks_weight",
            "n_masked_patches",
            "upperbound",
        }
        mask_indices_list = images["mask_indices_list"].to(device, non_blocking=True)
        batch = cls(
            global_crops=images["collated_global_crops"].to(device, non_blocking=True),
            local_crops=images["collated_local_crops"].to(device, non_blocking=True),
            masks=images["collated_masks"].to(device, non_blocking=True),
            mask_indices_list=mask_indices_list,
            masks_weight=images["masks_weight"].to(device, non_blocking=True),
            n_masked_patches=int(mask_indices_list.shape[0]),
            n_masked_patches_tensor=images["n_masked_patches"].to(device, non_blocking=True),
            upperbound=int(images["upperbound"]),
            extras={
                k: v.to(device, non_blocking=True)
                for k, v in images.items()
                if k not in known and isinstance(v, Tensor)
            },
        )
        if n_local_crops is not None and batch.n_local_crops != n_local_crops:
            raise ValueError(
                f"batch has {batch.n_local_crops} local crops per image, "
                f"config crops.local_crops_number={n_local_crops}"
            )
        return batch


@dataclass
class TeacherTargets:
    """dino ``(2, B, K)``: row ``i`` is the target of student global crop ``1 - i`` ... of every
    local crop; ibot ``(M, K)``: targets of the masked patches (None without iBOT)."""

    dino: Tensor
    ibot: Tensor | None


@dataclass
class StudentOutput:
    """Student outputs of one step: backbone dicts of the global and local crops, CLS tokens of the
    global crops ``(2B, D)``, and head outputs ``(n_local * B, K)``, ``(2B, K)``, ``(M, K)``."""

    global_backbone: dict[str, Tensor]
    local_backbone: dict[str, Tensor]
    global_cls_tokens: Tensor
    local_cls_after_head: Tensor
    global_cls_after_head: Tensor
    masked_patch_after_head: Tensor | None


@torch.no_grad()
def compute_teacher_targets(
    backbone_output: dict[str, Tensor],
    heads: dict[str, nn.Module],
    batch: Batch,
    teacher_temp: float,
    dino_loss: DINOLoss,
    ibot_loss: iBOTPatchLoss | None,
    centering: str = "centering",
) -> TeacherTargets:
    """DINO/iBOT targets from a teacher backbone output on the two global crops.

    ``heads`` holds ``dino_head`` (and ``ibot_head`` for a separate iBOT head); ``ibot_loss`` None
    disables iBOT. In ``centering`` mode the centre updates of ``dino_loss``/``ibot_loss`` are
    started (applied at their next use); ``sinkhorn_knopp`` needs no centre.
    """
    # Swap the two crops so that the target of student crop A is teacher crop B.
    cls_tokens = torch.cat(backbone_output["x_norm_clstoken"].chunk(2)[::-1])
    n_cls = cls_tokens.shape[0]
    patch_out = None
    if ibot_loss is not None:
        patches = (
            backbone_output["x_norm_patchtokens"]
            .flatten(0, 1)
            .index_select(0, batch.mask_indices_list)
        )
        if "ibot_head" in heads:
            cls_out, patch_out = heads["dino_head"](cls_tokens), heads["ibot_head"](patches)
        else:  # shared head: one call on CLS and masked patch tokens together
            out = heads["dino_head"](torch.cat([cls_tokens, patches]))
            cls_out, patch_out = out[:n_cls], out[n_cls:]
    else:
        cls_out = heads["dino_head"](cls_tokens)

    ibot_targets = None
    if centering == "centering":
        dino_targets = dino_loss.softmax_center_teacher(cls_out, teacher_temp=teacher_temp)
        dino_loss.update_center(cls_out)
        if patch_out is not None:
            ibot_targets = ibot_loss.softmax_center_teacher(
                patch_out.unsqueeze(0), teacher_temp=teacher_temp
            )[0]
            ibot_loss.update_center(patch_out.unsqueeze(0))
    elif centering == "sinkhorn_knopp":
        dino_targets = dino_loss.sinkhorn_knopp_teacher(cls_out, teacher_temp=teacher_temp)
        if patch_out is not None:
            ibot_targets = ibot_loss.sinkhorn_knopp_teacher(
                patch_out,
                teacher_temp=teacher_temp,
                n_masked_patches_tensor=batch.n_masked_patches_tensor,
            )
    else:
        raise ValueError(f"train.centering is {centering!r}; valid: centering, sinkhorn_knopp")
    return TeacherTargets(dino=dino_targets.view(2, -1, cls_out.shape[-1]), ibot=ibot_targets)
