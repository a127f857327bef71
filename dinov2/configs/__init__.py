"""DINOv2 training configs: ``ssl_default_config.yaml`` (every key, official defaults) and presets in ``train/``.

Official names: :func:`load_config`, :data:`dinov2_default_config`, :func:`load_and_merge_config`.
"""

from __future__ import annotations

import pathlib

from omegaconf import DictConfig, OmegaConf

CONFIGS_DIR = pathlib.Path(__file__).parent.resolve()


def load_config(config_name: str) -> DictConfig:
    """``configs/<config_name>.yaml``, e.g. ``load_config("train/vitl16_short")``."""
    return OmegaConf.load(CONFIGS_DIR / (config_name + ".yaml"))


dinov2_default_config = load_config("ssl_default_config")


def load_and_merge_config(config_name: str) -> DictConfig:
    """The default config with the preset ``config_name`` merged on top (keys checked strictly)."""
    from dinov2.utils.config import merge_training_config

    return merge_training_config(
        [(load_config(config_name), str(CONFIGS_DIR / (config_name + ".yaml")))]
    )
