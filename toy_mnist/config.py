"""The toy experiment's config: ``configs/toy_mnist.yaml`` ← ``--config FILE`` ← ``key=value``.

Checked strictly by the project's config engine (:mod:`utils.config`): an unknown key or a value of
the wrong type is a one-line :class:`~utils.config.ConfigError` naming the key and the closest valid
one. The ``protocol`` section is the paper's protocol (:class:`~toy_mnist.train.ToyConfig`, epochs
over 60,000 digits); the other keys are run options.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from toy_mnist.data import Digits, load_digits
from toy_mnist.train import ToyConfig, epoch_scale
from utils.config import (
    REPO_ROOT,
    ConfigError,
    check_bounds,
    load_yaml,
    parse_overrides,
    resolve,
    strict_merge,
)

DEFAULT_CONFIG = REPO_ROOT / "configs" / "toy_mnist.yaml"
MIN_VALUES = {"seeds": 1, "n_train": 0, "n_test": 0, "threads": 0}


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Defaults (:data:`DEFAULT_CONFIG`) ← the file ``path`` ← ``key=value`` overrides, checked
    strictly (keys, types, bounds, the protocol) and read-only."""
    layers = []
    if path is not None and Path(path).resolve() != DEFAULT_CONFIG:
        layers.append((load_yaml(path), str(path)))
    if overrides:
        layers.append((parse_overrides(overrides), "the command-line overrides"))
    defaults = load_yaml(DEFAULT_CONFIG)
    cfg = resolve(strict_merge(defaults, *layers), str(path or DEFAULT_CONFIG))
    _check_not_null(defaults, cfg)
    check_bounds(cfg, MIN_VALUES)
    protocol(cfg)
    _scale_setting(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def _check_not_null(defaults: DictConfig, cfg: DictConfig, prefix: str = "") -> None:
    """Only keys whose default is null may be null (the engine's type check lets null through)."""
    for key, default in defaults.items():
        value = cfg.get(key)
        if default is not None and value is None:
            expected = "a mapping" if isinstance(default, DictConfig) else f"default {default!r}"
            raise ConfigError(f"config key '{prefix}{key}' must not be null ({expected})")
        if isinstance(default, DictConfig):
            _check_not_null(default, value, f"{prefix}{key}.")


def protocol(cfg: DictConfig) -> ToyConfig:
    """The ``protocol`` section as a :class:`ToyConfig` (the paper's epochs, before step
    matching)."""
    try:
        return ToyConfig(**OmegaConf.to_container(cfg.protocol))
    except ValueError as e:
        raise ConfigError(f"config key {e}") from None


def paper_protocol() -> ToyConfig:
    """The authors' protocol: the ``protocol`` section of :data:`DEFAULT_CONFIG`."""
    return protocol(load_yaml(DEFAULT_CONFIG))


def _scale_setting(cfg: DictConfig) -> float | None:
    """``epoch_scale`` as a number, or None for ``auto`` (null); anything else is a ConfigError."""
    value = cfg.epoch_scale
    if value is None or value == "auto":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ConfigError(
        f"config key 'epoch_scale' must be auto (null) or a number > 0, got {value!r}"
    )


def epoch_scale_of(cfg: DictConfig, n_train: int) -> float:
    """The epoch scale of a run on ``n_train`` training digits (``auto``: 60000 / ``n_train``)."""
    value = _scale_setting(cfg)
    return epoch_scale(n_train) if value is None else value


def run_digits(cfg: DictConfig) -> Digits:
    """The digits of ``cfg`` (``mnist_root`` or MNIST-5k, ``n_train`` / ``n_test`` of them), on
    CPU."""
    root = cfg.mnist_root
    digits = load_digits(None if root is None else Path(str(root)).expanduser())
    if cfg.n_train or cfg.n_test:  # a smoke run on fewer digits
        digits = digits.subset(cfg.n_train or len(digits.train_x), cfg.n_test or len(digits.test_x))
    return digits


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` plus trailing ``key=value`` overrides, as in :func:`parse_args`."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"config YAML (keys, defaults and their sources: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. seeds=5 mnist_root=~/data protocol.noise_std=0.8",
    )


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args`` that points a former ``--some-option`` flag to its ``key=value``."""
    args, unknown = parser.parse_known_intermixed_args(argv)
    if unknown:
        flag = unknown[0].split("=", 1)[0]
        key = flag.lstrip("-").replace("-", "_")
        if key in load_yaml(DEFAULT_CONFIG).protocol:
            key = f"protocol.{key}"
        parser.error(
            f"unrecognized argument {flag}; the toy's settings are key=value overrides "
            f"(e.g. {key}=VALUE; keys in {DEFAULT_CONFIG.relative_to(REPO_ROOT)})"
        )
    return args
