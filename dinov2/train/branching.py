"""Branching a run off another run's checkpoint: the noise curriculum of DINOv2 w/ NC / NCT.

A run with ``branch.checkpoint`` starts from another run's full checkpoint (``branch.mode``):
``restart`` (the paper's NC/NCT) takes the weights only — student, teacher and the centring state —
and starts everything else anew: a fresh optimizer, iteration 0 and fresh lr / wd / momentum /
teacher-temperature schedules with their warm-ups (built from this run's own config). ``continue``
takes the optimizer, the iteration, the schedule position and the RNG states too, as a resume
would. Once the run has checkpoints of its own, it resumes from them and the branch source is not
read again. The source run keeps the checkpoint a branch starts from with
``train.keep_checkpoint_epochs`` (:func:`keep_iterations`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig

from dinov2 import distributed
from dinov2.train.checkpointing import load_checkpoint_file, restore_rng_state
from dinov2.train.parallel import load_checkpoint_state
from utils.config import ConfigError

if TYPE_CHECKING:
    from dinov2.train.ssl_meta_arch import SSLMetaArch

logger = logging.getLogger("dinov2")

BRANCH_MODES = ("restart", "continue")
# Keys of a run's own NCT anchor (its centres), absent from its branch source.
OWN_STATE_PREFIX = "anchor."


def load_branch_checkpoint(
    cfg: DictConfig, model: SSLMetaArch, optimizer: torch.optim.Optimizer
) -> tuple[int, int]:
    """Initialise from ``cfg.branch.checkpoint``; returns ``(start_iteration, schedule_start)``."""
    path, mode = cfg.branch.checkpoint, cfg.branch.mode
    if mode not in BRANCH_MODES:
        raise ConfigError(f"config key 'branch.mode' is {mode!r}; valid: {', '.join(BRANCH_MODES)}")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"config key 'branch.checkpoint': {path} does not exist; the source run keeps it "
            "only if its train.keep_checkpoint_epochs lists the switch epoch"
        )
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(
            f"config key 'branch.checkpoint': {path} is not a full training checkpoint (no 'model')"
        )
    # The source run has no NCT anchor: keep this run's own anchor state (built from
    # anchor.checkpoint).
    own = {k: v for k, v in model.state_dict().items() if k.startswith(OWN_STATE_PREFIX)}
    state = {k: v for k, v in ckpt["model"].items() if not k.startswith(OWN_STATE_PREFIX)} | own
    if mode == "restart":
        load_checkpoint_state(model, optimizer, state, None)
        logger.info(
            "branched off %s (restart): weights loaded, fresh optimizer and schedules", path
        )
        return 0, 0
    load_checkpoint_state(model, optimizer, state, ckpt["optimizer"])
    restore_rng_state(ckpt["rng"][distributed.get_global_rank() % len(ckpt["rng"])])
    logger.info("branched off %s (continue) at iteration %d", path, ckpt["iteration"])
    return int(ckpt["iteration"]), int(ckpt.get("schedule_start", 0))


def keep_iterations(cfg: DictConfig) -> tuple[int, ...]:
    """Iterations whose checkpoints are always written and never pruned (``keep_checkpoint_*``)."""
    epochs = [e * cfg.train.OFFICIAL_EPOCH_LENGTH for e in cfg.train.keep_checkpoint_epochs]
    return tuple(sorted({*cfg.train.keep_checkpoint_iterations, *epochs}))
