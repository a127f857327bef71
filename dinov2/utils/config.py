"""Training configs: ``ssl_default_config.yaml`` ← ``--config-file`` ← ``key=value`` opts, checked
strictly.

Official names (:func:`get_cfg_from_args`, :func:`apply_scaling_rules_to_cfg`, :func:`write_config`,
:func:`setup`). Unlike the official merge, an unknown key or a value of the wrong type in the
training YAML or in an override fails at once with a one-line :class:`utils.config.ConfigError` that
names the source and the closest valid key, so a typo cannot silently train with a default.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dinov2 import distributed
from dinov2.configs import merge_training_config
from utils.config import ConfigError, load_yaml, parse_overrides, save_resolved

logger = logging.getLogger("dinov2")

SCALING_RULES = ("sqrt_wrt_1024",)


def load_training_config(
    config_file: str | os.PathLike | None, opts: Sequence[str] = ()
) -> DictConfig:
    """Defaults ← ``config_file`` ← ``opts`` (``key=value``); unknown keys and wrong types raise
    ConfigError."""
    layers = []
    if config_file:
        layers.append((load_yaml(config_file), str(config_file)))
    if opts:
        layers.append((parse_overrides(list(opts)), "the command-line overrides"))
    cfg = merge_training_config(layers)
    check_values(cfg)
    return cfg


def check_values(cfg: DictConfig) -> None:
    """Value checks that the type check cannot do; each error names the key and what to set."""
    if cfg.optim.scaling_rule not in SCALING_RULES:
        raise ConfigError(
            f"config key 'optim.scaling_rule' is {cfg.optim.scaling_rule!r}; valid: {SCALING_RULES}"
        )
    if cfg.train.centering not in ("centering", "sinkhorn_knopp"):
        raise ConfigError(
            f"config key 'train.centering' is {cfg.train.centering!r}; "
            "valid: centering, sinkhorn_knopp"
        )
    if cfg.compute_precision.autocast_dtype not in ("bf16", "fp16", "fp32"):
        raise ConfigError(
            "config key 'compute_precision.autocast_dtype' is "
            f"{cfg.compute_precision.autocast_dtype!r}; "
            "valid: bf16, fp16, fp32"
        )
    if cfg.train.distributed not in ("ddp", "fsdp"):
        raise ConfigError(
            f"config key 'train.distributed' is {cfg.train.distributed!r}; valid: ddp, fsdp"
        )
    if cfg.train.batch_size_per_gpu < 1 or cfg.train.OFFICIAL_EPOCH_LENGTH < 1:
        raise ConfigError(
            "config keys 'train.batch_size_per_gpu' and 'train.OFFICIAL_EPOCH_LENGTH' must be >= 1"
        )
    # A zero-epoch run would "finish" at once and be passed on as a trained model.
    for key, minimum in (("optim.epochs", 1), ("train.num_workers", 0), ("optim.warmup_epochs", 0)):
        if OmegaConf.select(cfg, key) < minimum:
            raise ConfigError(
                f"config key '{key}' must be >= {minimum}, got {OmegaConf.select(cfg, key)}"
            )
    if cfg.optim.warmup_epochs > cfg.optim.epochs:
        raise ConfigError(
            f"config key 'optim.warmup_epochs' ({cfg.optim.warmup_epochs}) exceeds 'optim.epochs' "
            f"({cfg.optim.epochs})"
        )


def get_cfg_from_args(args: argparse.Namespace) -> DictConfig:
    """Official merge order; ``args.output_dir`` becomes ``train.output_dir`` (absolute)."""
    args.output_dir = os.path.abspath(args.output_dir)
    opts = list(args.opts) + [f"train.output_dir={args.output_dir}"]
    return load_training_config(args.config_file, opts)


def apply_scaling_rules_to_cfg(cfg: DictConfig) -> DictConfig:
    """``optim.lr = base_lr * sqrt(global batch / 1024)`` (official ``sqrt_wrt_1024``)."""
    if cfg.optim.scaling_rule == "sqrt_wrt_1024":
        base_lr = cfg.optim.base_lr
        global_batch = cfg.train.batch_size_per_gpu * distributed.get_global_size()
        cfg.optim.lr = base_lr * math.sqrt(global_batch / 1024.0)
        logger.info("sqrt scaling learning rate; base: %s, new: %s", base_lr, cfg.optim.lr)
    else:
        raise ConfigError(
            f"config key 'optim.scaling_rule' is {cfg.optim.scaling_rule!r}; valid: sqrt_wrt_1024"
        )
    return cfg


def write_config(cfg: DictConfig, output_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """The resolved config next to the run's outputs (atomic write); returns its path."""
    path = save_resolved(cfg, output_dir, name)
    logger.info("config saved to %s", path)
    return path


def setup(args: argparse.Namespace) -> DictConfig:
    """Merge the config, start ``torch.distributed`` if launched so, scale the lr, save
    ``config.yaml``."""
    cfg = get_cfg_from_args(args)
    os.makedirs(args.output_dir, exist_ok=True)
    distributed.enable()
    apply_scaling_rules_to_cfg(cfg)
    # A resumed run's config.yaml is replaced only once its checkpoint has loaded into the model of
    # this config (dinov2.train.train.do_train), so a failed resume leaves the finished run's
    # config.
    if distributed.is_main_process() and not any(Path(args.output_dir).rglob("model_*.pth")):
        write_config(cfg, args.output_dir)
    return cfg
