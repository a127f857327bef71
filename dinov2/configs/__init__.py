"""DINOv2 training configs: ``ssl_default_config.yaml`` (every key, official defaults) and presets
in ``train/``.

Official names: :func:`load_config`, :data:`dinov2_default_config`, :func:`load_and_merge_config`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from utils.config import strict_merge

CONFIGS_DIR = pathlib.Path(__file__).parent.resolve()


def load_config(config_name: str) -> DictConfig:
    """``configs/<config_name>.yaml``, e.g. ``load_config("train/vitl16_short")``."""
    return OmegaConf.load(CONFIGS_DIR / (config_name + ".yaml"))


dinov2_default_config = load_config("ssl_default_config")


def merge_training_config(layers: Sequence[tuple[DictConfig, str]]) -> DictConfig:
    """The default training config with ``(config, source name)`` layers merged on top, strictly."""
    return strict_merge(OmegaConf.create(dinov2_default_config), *layers)


def load_and_merge_config(config_name: str) -> DictConfig:
    """The default config with the preset ``config_name`` merged on top (keys checked strictly)."""
    return merge_training_config(
        [(load_config(config_name), str(CONFIGS_DIR / (config_name + ".yaml")))]
    )
