"""Per-iteration schedules of DINOv2 training (official ``build_schedulers`` /
``apply_optim_scheduler``).

Every schedule is an array indexed by the iteration *within the current schedule*; the loop passes
``iteration - schedule_start``. A run that branches off another run's checkpoint with a fresh
schedule (the noise curriculum) sets ``schedule_start`` to the branching iteration and rebuilds the
schedules with :func:`build_schedulers` from its own config: warm-ups start again while the weights
carry over.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from dinov2.utils.utils import CosineScheduler

__all__ = ["CosineScheduler", "Schedules", "apply_optim_scheduler", "build_schedulers"]


@dataclass
class Schedules:
    """lr, weight decay, teacher momentum, teacher temperature and last-layer lr, indexed by
    iteration."""

    lr: CosineScheduler
    wd: CosineScheduler
    momentum: CosineScheduler
    teacher_temp: CosineScheduler
    last_layer_lr: CosineScheduler

    def at(self, it: int) -> dict[str, float]:
        """Values at schedule iteration ``it`` (past the end: the final values)."""
        return {
            "lr": float(self.lr[it]),
            "wd": float(self.wd[it]),
            "mom": float(self.momentum[it]),
            "teacher_temp": float(self.teacher_temp[it]),
            "last_layer_lr": float(self.last_layer_lr[it]),
        }


def build_schedulers(cfg: DictConfig) -> Schedules:
    """The official schedules, lengths in ``OFFICIAL_EPOCH_LENGTH`` iterations per epoch.

    lr: linear warm-up 0 → ``optim.lr`` over ``warmup_epochs`` then cosine to ``min_lr``;
    wd: cosine ``weight_decay`` → ``weight_decay_end``; momentum: cosine ``momentum_teacher`` →
    ``final_momentum_teacher``; teacher temperature: linear ``warmup_teacher_temp`` →
    ``teacher_temp`` over ``warmup_teacher_temp_epochs`` then constant; last-layer lr: the lr
    schedule with zeros for the first ``freeze_last_layer_epochs``. ``optim.lr`` must already be
    scaled (``apply_scaling_rules_to_cfg``).
    """
    epoch_length = cfg.train.OFFICIAL_EPOCH_LENGTH
    total_iters = cfg.optim.epochs * epoch_length
    lr = dict(
        base_value=cfg.optim.lr,
        final_value=cfg.optim.min_lr,
        total_iters=total_iters,
        warmup_iters=cfg.optim.warmup_epochs * epoch_length,
        start_warmup_value=0,
    )
    warmup_temp_iters = cfg.teacher.warmup_teacher_temp_epochs * epoch_length
    last_layer_lr = CosineScheduler(**lr)
    # Official: the last layer's lr is zero for the first epoch(s), which stabilises early training.
    last_layer_lr.schedule[: cfg.optim.freeze_last_layer_epochs * epoch_length] = 0
    return Schedules(
        lr=CosineScheduler(**lr),
        wd=CosineScheduler(cfg.optim.weight_decay, cfg.optim.weight_decay_end, total_iters),
        momentum=CosineScheduler(
            cfg.teacher.momentum_teacher, cfg.teacher.final_momentum_teacher, total_iters
        ),
        teacher_temp=CosineScheduler(
            base_value=cfg.teacher.teacher_temp,
            final_value=cfg.teacher.teacher_temp,
            total_iters=warmup_temp_iters,
            warmup_iters=warmup_temp_iters,
            start_warmup_value=cfg.teacher.warmup_teacher_temp,
        ),
        last_layer_lr=last_layer_lr,
    )


def apply_optim_scheduler(
    optimizer: torch.optim.Optimizer, lr: float, wd: float, last_layer_lr: float
) -> None:
    """Set each group's lr (``last_layer_lr`` for the last layer) × its multiplier and wd × its
    multiplier."""
    for group in optimizer.param_groups:
        group["weight_decay"] = wd * group["wd_multiplier"]
        group["lr"] = (last_layer_lr if group["is_last_layer"] else lr) * group["lr_multiplier"]
