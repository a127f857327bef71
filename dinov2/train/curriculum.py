"""Noise curriculum: branch a run off another run's checkpoint, or run a list of phases in one command.

**Branching** (``branch.checkpoint``, ``branch.mode``): a run starts from another run's full checkpoint.
``restart`` (the paper's NC/NCT) takes the weights only — student, teacher and the centring state —
and starts everything else anew: a fresh optimizer, iteration 0 and fresh lr / wd / momentum /
teacher-temperature schedules with their warm-ups (built from this run's own config). ``continue``
takes the optimizer, the iteration, the schedule position and the RNG states too, as a resume would.
Once the run has checkpoints of its own, it resumes from them and the branch source is not read again.

**Curriculum** (``curriculum:`` list): each phase is a mapping with keys

- ``dataset_path``: dataset string of the phase (e.g. the denoised, then the noisy tree);
- ``epochs``: epochs trained in this phase;
- ``schedule_epochs``: length of the phase's schedule (e.g. 140 epochs of a 200-epoch schedule); default:
  ``epochs`` for a restarted phase, the previous phase's schedule for a continued one;
- ``restart``: start a fresh schedule at the phase boundary (default true) or continue the previous one;
- ``paired_root``: optional denoised root; the phase then reads ``PairedImageNet`` pairs and trains
  with the NCT anchor (``anchor.weight``, ``anchor.heads``) frozen at the previous phase's final checkpoint;
- ``overrides``: official-key overrides of this phase only (e.g. ``{optim: {warmup_epochs: 5}}``).

Phase ``k`` is an ordinary run in ``<output_dir>/phase_<k>`` that branches off phase ``k-1``'s final
checkpoint, so re-running the command skips finished phases and resumes the current one exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from dinov2 import distributed
from dinov2.train.checkpointing import load_checkpoint_file, restore_rng_state
from dinov2.train.parallel import load_checkpoint_state
from utils.config import ConfigError, strict_merge

if TYPE_CHECKING:
    from dinov2.train.ssl_meta_arch import SSLMetaArch

logger = logging.getLogger("dinov2")

BRANCH_MODES = ("restart", "continue")
PHASE_DEFAULTS = {
    "dataset_path": "",
    "epochs": 0,
    "schedule_epochs": 0,
    "restart": True,
    "paired_root": "",
    "overrides": {},
}
# Keys of a run's own extra loss modules (the NCT anchor's centres), absent from its branch source.
OWN_STATE_PREFIX = "regularizer."


# ------------------------------------------------------------------------------------------ branching
def load_branch_checkpoint(
    cfg: DictConfig, model: SSLMetaArch, optimizer: torch.optim.Optimizer
) -> tuple[int, int]:
    """Initialise from ``cfg.branch.checkpoint``; returns ``(start_iteration, schedule_start)``."""
    path, mode = cfg.branch.checkpoint, cfg.branch.mode
    if mode not in BRANCH_MODES:
        raise ConfigError(f"config key 'branch.mode' is {mode!r}; valid: {', '.join(BRANCH_MODES)}")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"config key 'branch.checkpoint': {path} does not exist; the source run keeps it only if its "
            "train.keep_checkpoint_epochs lists the switch epoch"
        )
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(
            f"config key 'branch.checkpoint': {path} is not a full training checkpoint (no 'model')"
        )
    # The source run has no NCT anchor: keep this run's own anchor state (built from anchor.checkpoint).
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


def checkpoint_path(run_dir: str | Path, iteration: int) -> Path:
    """Where a run saves its full checkpoint after ``iteration`` iterations (``model_<it:07d>.pth``)."""
    return Path(run_dir) / f"model_{iteration:07d}.pth"


# ------------------------------------------------------------------------------------------ curriculum
@dataclass
class CurriculumPhase:
    """One phase of ``curriculum:`` (see the module docstring)."""

    dataset_path: str
    epochs: int
    schedule_epochs: int
    restart: bool = True
    paired_root: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_curriculum(cfg: DictConfig) -> list[CurriculumPhase]:
    """The validated phases of ``cfg.curriculum`` (empty list: no curriculum)."""
    phases = []
    for k, raw in enumerate(cfg.curriculum):
        where = f"curriculum[{k}]"
        if not isinstance(raw, DictConfig):
            raise ConfigError(
                f"config key '{where}' must be a mapping with keys {', '.join(PHASE_DEFAULTS)}"
            )
        merged = strict_merge(OmegaConf.create(PHASE_DEFAULTS), (raw, f"config key '{where}'"))
        phase = CurriculumPhase(**OmegaConf.to_container(merged))
        if not phase.dataset_path or phase.epochs < 1:
            raise ConfigError(f"config key '{where}' needs a dataset_path and epochs >= 1")
        if (
            not phase.schedule_epochs
        ):  # a continued phase keeps the previous schedule, a restarted one its own
            phase.schedule_epochs = (
                phases[-1].schedule_epochs if (phases and not phase.restart) else phase.epochs
            )
        if phase.schedule_epochs < phase.epochs:
            raise ConfigError(
                f"config key '{where}.schedule_epochs' ({phase.schedule_epochs}) < epochs ({phase.epochs})"
            )
        if phase.paired_root and k == 0:
            raise ConfigError(
                f"config key '{where}.paired_root': the first phase has no previous teacher to anchor to"
            )
        phases.append(phase)
    return phases


def paired_dataset_path(dataset_path: str, paired_root: str) -> str:
    """``ImageNet:split=…:root=…`` → ``PairedImageNet:split=…:root=…:paired_root=<paired_root>``."""
    name, sep, rest = dataset_path.partition(":")
    if name not in ("ImageNet", "PairedImageNet"):
        raise ConfigError(
            f"curriculum paired_root needs an ImageNet dataset string, got {dataset_path!r}"
        )
    return f"PairedImageNet{sep}{rest}:paired_root={paired_root}"


def phase_dir(output_dir: str | Path, k: int) -> Path:
    return Path(output_dir) / f"phase_{k}"


def phase_configs(cfg: DictConfig) -> list[DictConfig]:
    """The ordinary training config of every phase (``curriculum`` emptied, branch/anchor set, lr scaled)."""
    from dinov2.utils.config import apply_scaling_rules_to_cfg

    configs: list[DictConfig] = []
    prev_end = 0  # iteration at which the previous phase stopped, in its own numbering
    for k, phase in enumerate(parse_curriculum(cfg)):
        c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        c.curriculum = []
        c = strict_merge(
            c, (OmegaConf.create(phase.overrides), f"config key 'curriculum[{k}].overrides'")
        )
        c.train.output_dir = str(phase_dir(cfg.train.output_dir, k))
        c.train.dataset_path = phase.dataset_path
        c.optim.epochs = phase.schedule_epochs
        start = 0 if (k == 0 or phase.restart) else prev_end
        c.train.stop_at_iteration = start + phase.epochs * c.train.OFFICIAL_EPOCH_LENGTH
        if c.train.stop_at_iteration > c.optim.epochs * c.train.OFFICIAL_EPOCH_LENGTH:
            raise ConfigError(
                f"config key 'curriculum[{k}]': continuing the previous schedule for {phase.epochs} epochs runs past "
                f"its end ({c.optim.epochs} epochs); set restart: true or a longer schedule_epochs"
            )
        if k > 0:
            source = checkpoint_path(configs[-1].train.output_dir, prev_end)
            c.branch.checkpoint, c.branch.mode = (
                str(source),
                ("restart" if phase.restart else "continue"),
            )
            c.anchor.checkpoint = str(source) if phase.paired_root else ""
        if phase.paired_root:
            c.train.dataset_path = paired_dataset_path(phase.dataset_path, phase.paired_root)
        prev_end = c.train.stop_at_iteration
        configs.append(
            apply_scaling_rules_to_cfg(c)
        )  # a phase may override the batch size or base_lr
    return configs


def phase_done(phase_cfg: DictConfig) -> bool:
    """True once the phase's final checkpoint exists."""
    return checkpoint_path(phase_cfg.train.output_dir, phase_cfg.train.stop_at_iteration).is_file()


def run_curriculum(
    cfg: DictConfig, build_and_train: Callable[[DictConfig], dict]
) -> list[dict[str, Any]]:
    """Run the phases in order with ``build_and_train(phase_cfg) -> summary``; finished phases are skipped.

    Each phase's resolved config is written to ``<output_dir>/phase_<k>/config.yaml``.
    """
    from dinov2.utils.config import write_config

    summaries = []
    for k, phase_cfg in enumerate(phase_configs(cfg)):
        if distributed.is_main_process():
            write_config(phase_cfg, phase_cfg.train.output_dir)
        if phase_done(phase_cfg):
            logger.info("curriculum phase %d already finished (%s)", k, phase_cfg.train.output_dir)
            summaries.append(
                {"iteration": phase_cfg.train.stop_at_iteration, "losses": {}, "skipped": True}
            )
            continue
        logger.info(
            "curriculum phase %d: %s, until iteration %d of a %d-epoch schedule",
            k,
            phase_cfg.train.dataset_path,
            phase_cfg.train.stop_at_iteration,
            phase_cfg.optim.epochs,
        )
        summaries.append(build_and_train(phase_cfg))
    return summaries
