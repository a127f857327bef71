"""DINOv2 meta-architecture: student and EMA teacher, each ``{backbone, dino_head[, ibot_head]}``.

Loss composition (official): with ``n_g = 2`` global and ``n_l`` local crops there are
``n_pairs = n_g * (n_g - 1) + n_g * n_l`` (student crop, teacher crop) pairs of different views.

- ``dino_local_crops_loss``  = sum over the ``n_l * n_g`` local/global pairs / ``n_pairs``;
- ``dino_global_crops_loss`` = 2 × (mean over the 2 crossed global pairs) / ``n_pairs``
  (the two global crops are processed as one batch, hence the factor 2);
- ``ibot_loss``  = iBOT masked-patch loss over the global crops (each crop weighs 1);
- ``koleo_loss`` = ``koleo_loss_weight`` × KoLeo of each global crop's student CLS, summed over the
  2 crops.

The total is ``dino.loss_weight × (local + global) + koleo + ibot.loss_weight × 2 × ibot`` where,
as in the official code, the logged ``ibot_loss`` and ``koleo_loss`` are half of what enters the
total. An optional :attr:`SSLMetaArch.anchor` (the NCT teacher-anchored regularizer) adds named loss
terms.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, Protocol

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from dinov2.layers import DINOHead
from dinov2.loss import DINOLoss, KoLeoLoss, iBOTPatchLoss
from dinov2.train.collapse import teacher_diagnostics
from dinov2.train.model_builder import build_model_from_cfg
from dinov2.train.parallel import wrap_for_distributed
from dinov2.train.targets import Batch, StudentOutput, TeacherTargets, compute_teacher_targets
from dinov2.utils.param_groups import fuse_params_groups, get_params_groups_with_decay
from dinov2.utils.utils import load_pretrained_weights
from utils.runtime import autocast

logger = logging.getLogger("dinov2")

N_GLOBAL_CROPS = 2


class AnchorLoss(Protocol):
    """An extra loss: ``anchor(arch, batch, student, teacher_temp) -> {name: weighted loss}``."""

    def __call__(
        self, arch: SSLMetaArch, batch: Batch, student: StudentOutput, teacher_temp: float
    ) -> dict[str, Tensor]: ...


class SSLMetaArch(nn.Module):
    """Student/teacher networks, DINO/iBOT/KoLeo losses, EMA update and parameter groups.

    ``forward_backward(images, teacher_temp)`` takes a batch of
    :func:`dinov2.data.collate_data_and_cast` and returns the logged losses; gradients are left in
    the student for the optimizer step.
    """

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fp16_scaler: torch.amp.GradScaler | None = None  # set by the loop for CUDA fp16
        self.autocast_dtype: torch.dtype | None = None  # set by the loop (None: fp32)
        self.anchor: nn.Module | None = None  # NCT regularizer (extra loss hook), see AnchorLoss
        student_backbone, teacher_backbone, embed_dim = build_model_from_cfg(cfg)
        if cfg.student.pretrained_weights:
            # Official: non-strict. Mismatched keys are logged one per line by
            # load_pretrained_weights; a teacher export, a training checkpoint (its teacher) or a
            # hub backbone are all accepted.
            load_pretrained_weights(
                student_backbone, cfg.student.pretrained_weights, "teacher", strict=False
            )
        self.embed_dim = embed_dim
        self.do_dino = cfg.dino.loss_weight > 0
        self.do_koleo = cfg.dino.koleo_loss_weight > 0
        self.do_ibot = cfg.ibot.loss_weight > 0
        self.ibot_separate_head = cfg.ibot.separate_head

        student, teacher = {"backbone": student_backbone}, {"backbone": teacher_backbone}
        dino_head = partial(
            DINOHead,
            in_dim=embed_dim,
            out_dim=cfg.dino.head_n_prototypes,
            hidden_dim=cfg.dino.head_hidden_dim,
            bottleneck_dim=cfg.dino.head_bottleneck_dim,
            nlayers=cfg.dino.head_nlayers,
        )
        student["dino_head"], teacher["dino_head"] = dino_head(), dino_head()
        self.dino_loss = DINOLoss(cfg.dino.head_n_prototypes)
        self.koleo_loss = KoLeoLoss()
        ibot_out_dim = (
            cfg.ibot.head_n_prototypes if self.ibot_separate_head else cfg.dino.head_n_prototypes
        )
        self.ibot_patch_loss = iBOTPatchLoss(ibot_out_dim)
        if self.do_ibot and self.ibot_separate_head:
            ibot_head = partial(
                DINOHead,
                in_dim=embed_dim,
                out_dim=cfg.ibot.head_n_prototypes,
                hidden_dim=cfg.ibot.head_hidden_dim,
                bottleneck_dim=cfg.ibot.head_bottleneck_dim,
                nlayers=cfg.ibot.head_nlayers,
            )
            student["ibot_head"], teacher["ibot_head"] = ibot_head(), ibot_head()
        self.student = nn.ModuleDict(student)
        self.teacher = nn.ModuleDict(teacher)
        # No backpropagation through the teacher: it follows the student by EMA only.
        self.teacher.requires_grad_(False)
        # Distributed wrappers (DDP) of the student sub-networks, kept out of the module tree so
        # that state_dict keys stay the official ones ("student.backbone.blocks.0...").
        self._student_wrappers: dict[str, nn.Module] = {}
        logger.info("student and teacher built: %s, embed_dim %d", cfg.student.arch, embed_dim)

    # ---------------------------------------------------------------- forward / backward
    def _student_module(self, name: str) -> nn.Module:
        return self._student_wrappers.get(name, self.student[name])

    @torch.no_grad()
    def get_teacher_output(self, batch: Batch, teacher_temp: float) -> TeacherTargets:
        """Teacher targets of the two global crops; starts the centre updates (centering mode)."""
        output = self.teacher.backbone(batch.global_crops, is_training=True)
        return compute_teacher_targets(
            output,
            dict(self.teacher.items()),
            batch,
            teacher_temp,
            dino_loss=self.dino_loss,
            ibot_loss=self.ibot_patch_loss if self.do_ibot else None,
            centering=self.cfg.train.centering,
        )

    def get_student_output(self, batch: Batch) -> StudentOutput:
        """Student backbone on global (masked) and local crops, then the heads in one call each."""
        global_out, local_out = self._student_module("backbone")(
            [batch.global_crops, batch.local_crops], masks=[batch.masks, None], is_training=True
        )
        global_cls = global_out["x_norm_clstoken"]
        local_cls = local_out["x_norm_clstoken"]
        masked_patches = (
            global_out["x_norm_patchtokens"].flatten(0, 1).index_select(0, batch.mask_indices_list)
        )
        # One call of the shared head on the concatenation (one DDP forward per sub-network and
        # step).
        head_inputs = [local_cls, global_cls]
        if self.do_ibot and not self.ibot_separate_head:
            head_inputs.append(masked_patches)
        head_out = self._student_module("dino_head")(torch.cat(head_inputs)).split(
            [len(t) for t in head_inputs]
        )
        masked_after_head = None
        if self.do_ibot:
            masked_after_head = (
                self._student_module("ibot_head")(masked_patches)
                if self.ibot_separate_head
                else head_out[2]
            )
        return StudentOutput(
            global_backbone=global_out,
            local_backbone=local_out,
            global_cls_tokens=global_cls,
            local_cls_after_head=head_out[0],
            global_cls_after_head=head_out[1],
            masked_patch_after_head=masked_after_head,
        )

    def dino_ibot_losses(
        self, student: StudentOutput, targets: TeacherTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Official DINO (local, global) and iBOT terms of ``student`` against ``targets``
        (unweighted)."""
        n_local = batch.n_local_crops
        n_pairs = N_GLOBAL_CROPS * (N_GLOBAL_CROPS - 1) + max(n_local * N_GLOBAL_CROPS, 1)
        losses: dict[str, Tensor] = {}
        if n_local > 0:
            losses["dino_local_crops_loss"] = (
                self.dino_loss(
                    list(student.local_cls_after_head.chunk(n_local)), list(targets.dino)
                )
                / n_pairs
            )
        if self.do_dino:
            # The two global crops go through the loss as one batch: a mean over 2 pairs, hence ×2.
            global_term = self.dino_loss(
                [student.global_cls_after_head], [targets.dino.flatten(0, 1)]
            )
            losses["dino_global_crops_loss"] = global_term * N_GLOBAL_CROPS / n_pairs
        if self.do_ibot:
            losses["ibot_loss"] = self.ibot_patch_loss.forward_masked(
                student.masked_patch_after_head,
                targets.ibot,
                student_masks_flat=batch.masks,
                n_masked_patches=batch.n_masked_patches,
                masks_weight=batch.masks_weight,
            )
        return losses

    def koleo_term(self, student: StudentOutput) -> Tensor:
        """KoLeo of each global crop's CLS tokens (never across the two crops of one image),
        summed."""
        return sum(self.koleo_loss(p) for p in student.global_cls_tokens.chunk(N_GLOBAL_CROPS))

    def forward_backward(self, images: dict[str, Any], teacher_temp: float) -> dict[str, Tensor]:
        """One forward and backward pass; returns the detached loss terms (official display
        values)."""
        device = next(self.student.parameters()).device
        batch = Batch.from_collated(images, device, self.cfg.crops.local_crops_number)
        with autocast(device, self.autocast_dtype):
            targets = self.get_teacher_output(batch, teacher_temp)
            self.reshard_teacher()
            student = self.get_student_output(batch)
            losses = self.dino_ibot_losses(student, targets, batch)
            diagnostics = teacher_diagnostics(
                targets.dino
            )  # collapse shows here first (dinov2/train/collapse.py)
            diagnostics["dino_center_norm"] = self.dino_loss.center.norm()
            total = self.cfg.dino.loss_weight * (
                losses.get("dino_local_crops_loss", 0.0) + losses.get("dino_global_crops_loss", 0.0)
            )
            if self.do_ibot:
                # Official: ×2 (global crops) ×1/2 (ibot_loss_scale) cancel; the display value is
                # halved.
                total = total + self.cfg.ibot.loss_weight * losses["ibot_loss"]
                losses["ibot_loss"] = losses["ibot_loss"] / 2
            if self.do_dino and self.do_koleo:
                koleo = self.cfg.dino.koleo_loss_weight * self.koleo_term(student)
                total = total + koleo
                losses["koleo_loss"] = koleo / 2
            if self.anchor is not None:
                extra = self.anchor(self, batch, student, teacher_temp)
                total = total + sum(extra.values())
                losses.update(extra)
        self.backprop_loss(total)
        losses = {k: v.detach() for k, v in losses.items()}
        losses["total_loss"] = total.detach()
        losses.update(diagnostics)
        return losses

    def backprop_loss(self, loss: Tensor) -> None:
        if self.fp16_scaler is not None:
            self.fp16_scaler.scale(loss).backward()
        else:
            loss.backward()

    # ------------------------------------------------------------ teacher, optimizer, distributed
    def reshard_teacher(self) -> None:
        """FSDP: free the teacher's gathered parameters after its forward (no backward will do
        it)."""
        for m in self.teacher.modules():
            if hasattr(m, "reshard") and callable(m.reshard):
                m.reshard()

    @torch.no_grad()
    def update_teacher(self, m: float) -> None:
        """EMA: ``teacher = m * teacher + (1 - m) * student`` for every parameter."""
        student_params, teacher_params = [], []
        for k in self.student.keys():
            student_params += list(self.student[k].parameters())
            teacher_params += list(self.teacher[k].parameters())
        torch._foreach_mul_(teacher_params, m)
        torch._foreach_add_(teacher_params, student_params, alpha=1 - m)

    def train(self, mode: bool = True) -> SSLMetaArch:
        super().train(mode)
        self.teacher.eval()
        return self

    @torch.no_grad()
    def flush_center_updates(self) -> None:
        """Apply pending (asynchronous) centre updates now, so that a checkpoint holds the current
        centres."""
        self.dino_loss.apply_center_update()
        self.ibot_patch_loss.apply_center_update()

    def get_maybe_fused_params_for_submodel(self, m: nn.Module) -> list[dict]:
        groups = get_params_groups_with_decay(
            m,
            lr_decay_rate=self.cfg.optim.layerwise_decay,
            patch_embed_lr_mult=self.cfg.optim.patch_embed_lr_mult,
        )
        return fuse_params_groups(groups)

    def get_params_groups(self) -> list[dict]:
        """Optimizer groups of every student sub-network (see :mod:`dinov2.utils.param_groups`)."""
        groups = []
        for m in self.student.values():
            groups += self.get_maybe_fused_params_for_submodel(m)
        return groups

    def prepare_for_distributed_training(self) -> None:
        """Same student weights on every rank, teacher ← student, then DDP (or FSDP ``fully_shard``)
        when ``torch.distributed`` is enabled (see :mod:`dinov2.train.parallel`)."""
        self._student_wrappers = wrap_for_distributed(self, self.cfg.train.distributed)
