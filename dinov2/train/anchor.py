"""The teacher-anchored regularizer of DINOv2 w/ NCT: the extra loss module ``SSLMetaArch.anchor``.

A *frozen* teacher (backbone + heads of the denoised run at the switch epoch) sees the *denoised*
version of the two global crops (``collated_global_crops_paired``, same augmentation parameters as
the noisy crops) and produces DINO and iBOT targets with its own centring state. The student's
outputs on the noisy crops — the ones the main loss already computed — are pulled towards those
targets::

    anchor = λ · (dino.loss_weight · (local DINO + global DINO) + ibot.loss_weight · iBOT)

with exactly the main loss's normalisations (:meth:`SSLMetaArch.dino_ibot_losses`); KoLeo is not
part of it.

Heads (``anchor.heads``): ``live`` feeds the frozen backbone's tokens through the *live EMA
teacher's* heads, which is what the paper's code does and what its published numbers use (default);
``frozen`` uses the heads saved in the switch checkpoint.

The frozen networks are kept out of the module tree on purpose: they are not in ``state_dict`` (a
checkpoint of an NCT run stays loadable as a plain DINOv2 checkpoint, and resuming reloads them from
``anchor.checkpoint``), not in any optimizer group and not in the EMA, and ``SSLMetaArch.train()``
cannot switch them out of eval mode. Only the anchor's centres are registered buffers, so an NCT run
resumes exactly. On CUDA the frozen backbone runs under bf16 autocast.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from dinov2.layers import DINOHead
from dinov2.loss import DINOLoss, iBOTPatchLoss
from dinov2.train.model_builder import build_model_from_cfg
from dinov2.train.targets import Batch, StudentOutput, TeacherTargets, compute_teacher_targets
from dinov2.utils.utils import select_state
from utils.runtime import autocast

if TYPE_CHECKING:
    from dinov2.train.ssl_meta_arch import SSLMetaArch

logger = logging.getLogger("dinov2")

HEAD_MODES = ("live", "frozen")
PAIRED_KEY = "collated_global_crops_paired"


def build_teacher_modules(cfg: DictConfig) -> nn.ModuleDict:
    """Teacher ``{backbone, dino_head[, ibot_head]}`` shaped as ``SSLMetaArch``'s for ``cfg``."""
    backbone, embed_dim = build_model_from_cfg(cfg, only_teacher=True)
    modules = {"backbone": backbone}
    head = partial(DINOHead, in_dim=embed_dim)
    d, i = cfg.dino, cfg.ibot
    modules["dino_head"] = head(
        out_dim=d.head_n_prototypes,
        hidden_dim=d.head_hidden_dim,
        bottleneck_dim=d.head_bottleneck_dim,
        nlayers=d.head_nlayers,
    )
    if i.loss_weight > 0 and i.separate_head:
        modules["ibot_head"] = head(
            out_dim=i.head_n_prototypes,
            hidden_dim=i.head_hidden_dim,
            bottleneck_dim=i.head_bottleneck_dim,
            nlayers=i.head_nlayers,
        )
    return nn.ModuleDict(modules)


def read_teacher_state(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(teacher state without prefix, centres)`` of a training checkpoint or a teacher export.

    A full checkpoint ``model_<it>.pth``
    (``{"model": {"teacher.backbone.…", "dino_loss.center", …}}``) gives the centres too; an export
    ``{"teacher": …}`` has none (the anchor's centres then start at 0).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"config key 'anchor.checkpoint': {path} does not exist; point it at the denoised "
            "run's switch checkpoint (model_<iteration>.pth, kept through "
            "train.keep_checkpoint_epochs)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and ("model" in ckpt or "teacher" in ckpt):
        state = ckpt.get("model", {})
        centers = {
            k: state[k] for k in ("dino_loss.center", "ibot_patch_loss.center") if k in state
        }
        return dict(select_state(ckpt, "teacher")), centers
    raise ValueError(
        f"config key 'anchor.checkpoint': {path} holds neither 'model' nor 'teacher' weights"
    )


class AnchorRegularizer(nn.Module):
    """NCT anchor loss; ``anchor(arch, batch, student, teacher_temp) -> {name: λ-weighted loss}``.

    Inputs: ``batch.extras["collated_global_crops_paired"]`` ``(2B, 3, H, W)`` (the denoised global
    crops, crop-major like ``batch.global_crops``) and the student's :class:`StudentOutput` of this
    step. Returns scalar terms ``anchor_dino_local_crops_loss``, ``anchor_dino_global_crops_loss``
    and ``anchor_ibot_loss`` already multiplied by λ and the main loss weights (they are added to
    the total as they are); ``{}`` when λ = 0, in which case nothing is computed and training equals
    NC exactly.
    """

    def __init__(
        self,
        cfg: DictConfig,
        frozen_teacher: nn.ModuleDict,
        centers: dict[str, Tensor] | None = None,
        weight: float = 1.0,
        heads: str = "live",
    ) -> None:
        super().__init__()
        if heads not in HEAD_MODES:
            raise ValueError(
                f"config key 'anchor.heads' is {heads!r}; valid: {', '.join(HEAD_MODES)}"
            )
        self.weight, self.heads, self.cfg = float(weight), heads, cfg
        frozen_teacher.requires_grad_(False).eval()
        # object.__setattr__: deliberately *not* a registered submodule (see the module docstring).
        object.__setattr__(self, "frozen_teacher", frozen_teacher)
        self.dino_loss = DINOLoss(cfg.dino.head_n_prototypes)
        ibot_dim = (
            cfg.ibot.head_n_prototypes if cfg.ibot.separate_head else cfg.dino.head_n_prototypes
        )
        self.ibot_patch_loss = iBOTPatchLoss(ibot_dim)
        for name, center in (centers or {}).items():
            # The anchor's own centring starts from the switch checkpoint's centres.
            getattr(self, name.split(".")[0]).center.copy_(center)

    def _apply(self, fn, *args, **kwargs):
        # .to(device) / .cuda() also move the unregistered frozen teacher.
        self.frozen_teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> AnchorRegularizer:
        super().train(mode)
        self.frozen_teacher.eval()
        return self

    def target_heads(self, arch: SSLMetaArch) -> dict[str, nn.Module]:
        """The heads that turn the frozen backbone's tokens into targets (``anchor.heads``)."""
        source = arch.teacher if self.heads == "live" else self.frozen_teacher
        return {k: m for k, m in source.items() if k != "backbone"}

    @torch.no_grad()
    def get_targets(self, arch: SSLMetaArch, batch: Batch, teacher_temp: float) -> TeacherTargets:
        """DINO ``(2, B, K)`` / iBOT ``(M, K)`` targets of the frozen backbone on the denoised
        global crops."""
        paired = batch.extras.get(PAIRED_KEY)
        if paired is None:
            raise ValueError(
                "the NCT anchor needs the denoised global crops: set train.dataset_path to a "
                "PairedImageNet:split=TRAIN:root=NOISY:paired_root=DENOISED string"
            )
        device = paired.device
        with autocast(device, torch.bfloat16):
            output = self.frozen_teacher["backbone"](paired, is_training=True)
        targets = compute_teacher_targets(
            output,
            self.target_heads(arch),
            batch,
            teacher_temp,
            dino_loss=self.dino_loss,
            ibot_loss=self.ibot_patch_loss if arch.do_ibot else None,
            centering=arch.cfg.train.centering,
        )
        # Apply the centre updates now rather than at the next step (same values, as no other
        # forward uses these centres in between), so that a checkpoint after this step holds the
        # current centres.
        self.dino_loss.apply_center_update()
        self.ibot_patch_loss.apply_center_update()
        return targets

    def forward(
        self, arch: SSLMetaArch, batch: Batch, student: StudentOutput, teacher_temp: float
    ) -> dict[str, Tensor]:
        if self.weight == 0:
            return {}
        targets = self.get_targets(arch, batch, teacher_temp)
        terms = arch.dino_ibot_losses(student, targets, batch)
        scale = {
            "dino_local_crops_loss": self.cfg.dino.loss_weight,
            "dino_global_crops_loss": self.cfg.dino.loss_weight,
            "ibot_loss": self.cfg.ibot.loss_weight,
        }
        return {f"anchor_{k}": self.weight * scale[k] * v for k, v in terms.items()}


def build_anchor(cfg: DictConfig, device: torch.device | str = "cpu") -> AnchorRegularizer | None:
    """The anchor of ``cfg.anchor`` (None when ``anchor.checkpoint`` is empty), on ``device``.

    The frozen teacher is built under a forked RNG: its random initialisation (overwritten by the
    checkpoint anyway) must not shift the training RNG, or λ = 0 would not reproduce NC.
    """
    a = cfg.anchor
    if not a.checkpoint:
        return None
    teacher_state, centers = read_teacher_state(a.checkpoint)
    with torch.random.fork_rng(devices=[]):
        frozen = build_teacher_modules(cfg)
    missing, unexpected = frozen.load_state_dict(teacher_state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"config key 'anchor.checkpoint': the teacher of {a.checkpoint} does not match this "
            f"config's model (missing {missing[:3]}, unexpected {unexpected[:3]}); use the same "
            "student/dino/ibot settings"
        )
    logger.info(
        "NCT anchor: frozen teacher from %s, weight %s, %s heads", a.checkpoint, a.weight, a.heads
    )
    return AnchorRegularizer(cfg, frozen, centers, weight=a.weight, heads=a.heads).to(device)
