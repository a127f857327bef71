"""The four pretraining methods of an experiment, as DINOv2 training configs.

``training_config_for(experiment_cfg, method)`` maps one experiment YAML
(``configs/experiments/*``, sections ``data``, ``pretrain``, ``anchor``) and a method to the
training config of its run:

- ``dinov2``:     ``pretrain.epochs`` on the noisy tree;
- ``n2n_dinov2``: ``pretrain.epochs`` on the denoised tree; its checkpoint at
  ``pretrain.switch_epoch`` is kept (``train.keep_checkpoint_epochs``) because NC and NCT branch
  off it;
- ``nc``:  restart a fresh ``pretrain.curriculum_epochs`` schedule on the noisy tree from that
  checkpoint;
- ``nct``: ``nc`` + the anchor regularizer (weight ``anchor.weight``, heads ``anchor.heads``) on
  noisy/denoised pairs, whose frozen teacher is the N2N + DINOv2 checkpoint at ``anchor.epoch``
  (0: the switch epoch). The authors anchor to the switch checkpoint on ImageNet-100 (epoch 140)
  but to the denoised run's *final* checkpoint on ImageNet-1k (epoch 100, while the branch is at
  epoch 30); that checkpoint is kept too. ``pretrain.nct_overrides`` are official-key overrides
  of the NCT run only (the paper configs: the authors' NCT blur).

Each run lives in ``pretrain.runs_dir/<method>``. The returned config has every training key
(strictly merged: preset ``pretrain.config_file`` ← ``pretrain.overrides`` ← method keys
[← ``pretrain.curriculum_overrides`` for nc/nct ← ``pretrain.nct_overrides`` for nct]); the lr
scaling rule is applied by the training entry point (``dinov2.utils.config.setup``).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dinov2.run.experiment import METHODS, check_method, method_paths
from dinov2.train.checkpointing import checkpoint_path
from dinov2.utils.config import check_values, merge_training_config
from utils.config import ConfigError, load_yaml

__all__ = [
    "METHODS",
    "anchor_checkpoint",
    "anchor_epoch",
    "switch_checkpoint",
    "train_dataset_string",
    "training_config_for",
]

BRANCHING_METHODS = ("nc", "nct")


def train_dataset_string(experiment_cfg: DictConfig, method: str) -> str:
    """``ImageNet:…`` of the method's training root.

    NCT: ``PairedImageNet:…:paired_root=<denoised root>``."""
    paths = method_paths(experiment_cfg, method)
    plain = paths.dataset_string("TRAIN")
    return plain if paths.paired_root is None else f"Paired{plain}:paired_root={paths.paired_root}"


def switch_checkpoint(experiment_cfg: DictConfig, method: str, epoch_length: int) -> Path:
    """The full checkpoint at ``pretrain.switch_epoch`` of the run ``method`` branches off."""
    source = method_paths(experiment_cfg, method).branch_from
    return checkpoint_path(source, experiment_cfg.pretrain.switch_epoch * epoch_length)


def anchor_epoch(experiment_cfg: DictConfig) -> int:
    """The N2N + DINOv2 epoch whose checkpoint is NCT's frozen teacher.

    That is ``anchor.epoch``; 0 means the switch epoch."""
    epoch = int(experiment_cfg.anchor.epoch) or int(experiment_cfg.pretrain.switch_epoch)
    if not 0 < epoch <= experiment_cfg.pretrain.epochs:
        raise ConfigError(
            f"config key 'anchor.epoch' ({epoch}) must be within 1..pretrain.epochs "
            f"({experiment_cfg.pretrain.epochs}) (0: the switch epoch)"
        )
    return epoch


def anchor_checkpoint(experiment_cfg: DictConfig, epoch_length: int) -> Path:
    """The N2N + DINOv2 run's full checkpoint at :func:`anchor_epoch` (NCT's frozen teacher)."""
    source = method_paths(experiment_cfg, "nct").branch_from
    return checkpoint_path(source, anchor_epoch(experiment_cfg) * epoch_length)


def _method_keys(experiment_cfg: DictConfig, method: str, epoch_length: int) -> dict:
    p = experiment_cfg.pretrain
    train = {
        "output_dir": str(method_paths(experiment_cfg, method).run_dir),
        "dataset_path": train_dataset_string(experiment_cfg, method),
        "seed": experiment_cfg.seed,
    }
    keys: dict = {"train": train, "optim": {"epochs": p.epochs}}
    if (
        method == "n2n_dinov2"
    ):  # NC and NCT branch off the switch checkpoint, NCT anchors to its anchor epoch's
        train["keep_checkpoint_epochs"] = sorted(
            {int(p.switch_epoch), anchor_epoch(experiment_cfg)}
        )
    if method in BRANCHING_METHODS:
        source = str(switch_checkpoint(experiment_cfg, method, epoch_length))
        keys["optim"]["epochs"] = p.curriculum_epochs
        keys["branch"] = {"checkpoint": source, "mode": "restart"}
        if method == "nct":
            anchor = experiment_cfg.anchor
            keys["anchor"] = {
                "checkpoint": str(anchor_checkpoint(experiment_cfg, epoch_length)),
                "weight": float(anchor.weight),
                "heads": anchor.heads,
            }
    return keys


def training_config_for(experiment_cfg: DictConfig, method: str) -> DictConfig:
    """The full (unscaled, resolved) training config of ``method`` in ``experiment_cfg``."""
    try:
        check_method(method)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    p = experiment_cfg.pretrain
    if p.switch_epoch >= p.epochs:
        raise ConfigError(
            f"config key 'pretrain.switch_epoch' ({p.switch_epoch}) must be < "
            f"pretrain.epochs ({p.epochs})"
        )
    layers = [
        (load_yaml(p.config_file), str(p.config_file)),
        (OmegaConf.create(p.overrides), "config key 'pretrain.overrides'"),
    ]
    base = merge_training_config(layers)
    layers.append(
        (
            OmegaConf.create(
                _method_keys(experiment_cfg, method, base.train.OFFICIAL_EPOCH_LENGTH)
            ),
            method,
        )
    )
    if method in BRANCHING_METHODS:
        layers.append(
            (OmegaConf.create(p.curriculum_overrides), "config key 'pretrain.curriculum_overrides'")
        )
    if method == "nct":
        layers.append((OmegaConf.create(p.nct_overrides), "config key 'pretrain.nct_overrides'"))
    cfg = merge_training_config(layers)
    check_values(cfg)
    return cfg
