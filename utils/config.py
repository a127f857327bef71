"""Strict experiment configs: one YAML = one experiment.

Every key has a default in ``configs/defaults.yaml``. An experiment file and ``key=value`` overrides
(OmegaConf dotlist) are merged on top of it; an unknown key or a value of the wrong type fails before
any work starts with a one-line :class:`ConfigError` naming the key and the closest valid one.

Conventions of the defaults file:
- a default of ``null`` or ``???`` accepts any type (``???`` must be set before use);
- a default of ``{}`` is an open mapping: any keys are accepted below it (validated by the stage
  that consumes it, e.g. the official DINOv2 training config);
- an int is accepted where the default is a float, never a bool where it is a number.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from utils.atomic import atomic_write_text

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = REPO_ROOT / "configs" / "defaults.yaml"
DEMO_EXPERIMENT = REPO_ROOT / "configs" / "experiments" / "demo.yaml"
RESOLVED_NAME = "config.yaml"


class ConfigError(ValueError):
    """A bad configuration, with a one-line message that says what to change."""


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("noise_spec"):
        # Imported lazily: utils.noise imports torch, which config users may not need.
        def noise_spec(family, sigma_255, lam, c):
            from utils.noise import NoiseSpec

            level = {"gauss": sigma_255, "shot": lam, "speckle": c}.get(family)
            if level is None:
                raise ConfigError(
                    f"config key 'noise.family' is {family!r}; valid families: gauss, shot, speckle"
                )
            try:
                return NoiseSpec(family, float(level)).tag
            except ValueError as e:
                key = {"gauss": "sigma_255", "shot": "lam", "speckle": "c"}[family]
                raise ConfigError(f"config key 'noise.{key}': {e}") from None

        OmegaConf.register_resolver("noise_spec", noise_spec)
    if not OmegaConf.has_resolver("repo"):
        OmegaConf.register_resolver("repo", lambda: str(REPO_ROOT))


def _flat_keys(tree: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for k, v in tree.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, Mapping) and v:
            keys.extend(_flat_keys(v, full + "."))
    return keys


def _closest(key: str, candidates: Iterable[str]) -> str | None:
    candidates = list(candidates)
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if match:
        return match[0]
    # A misspelt leaf under the right parent: compare the last component only.
    leaf = key.rsplit(".", 1)[-1]
    by_leaf = {c.rsplit(".", 1)[-1]: c for c in candidates}
    match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
    return by_leaf[match[0]] if match else None


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number" if isinstance(value, float) else "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Sequence):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or default == "???" or value is None:
        return True
    if isinstance(value, str) and value.startswith("${"):
        return True  # an interpolation; checked after resolution
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def check_keys(defaults: Mapping, override: Mapping, source: str, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first key of ``override`` unknown to ``defaults`` or of a wrong type."""
    all_keys = _flat_keys(defaults)
    for key, value in override.items():
        full = f"{prefix}{key}"
        if key not in defaults:
            parent_keys = [f"{prefix}{k}" for k in defaults]
            hint = _closest(full, parent_keys) or _closest(full, all_keys)
            did_you_mean = f"; did you mean '{hint}'?" if hint else ""
            raise ConfigError(f"unknown config key '{full}' in {source}{did_you_mean}")
        default = defaults[key]
        if not _type_ok(default, value):
            raise ConfigError(
                f"config key '{full}' in {source} expects {_type_name(default)} "
                f"(default {default!r}), got {value!r}"
            )
        if isinstance(default, dict) and default and isinstance(value, dict):
            check_keys(default, value, source, full + ".")


def strict_merge(defaults: DictConfig, *layers: tuple[DictConfig, str]) -> DictConfig:
    """Merge ``(config, source_name)`` layers onto ``defaults`` after checking their keys and types."""
    merged = defaults
    for layer, source in layers:
        base = OmegaConf.to_container(merged, resolve=False)
        over = OmegaConf.to_container(layer, resolve=False)
        check_keys(base, over, source)
        merged = OmegaConf.merge(merged, layer)
    return merged


def load_yaml(path: str | os.PathLike) -> DictConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and friends: report file and first line of the reason
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot parse {path}: {reason}") from e
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config keys at top level")
    return cfg


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"override {bad[0]!r} is not of the form key=value (e.g. noise.sigma_255=100)")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as e:
        raise ConfigError(f"bad override in {list(overrides)}: {str(e).splitlines()[0]}") from e


def _missing_keys(tree: Mapping, prefix: str = "") -> list[str]:
    found = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            found.extend(_missing_keys(v, f"{prefix}{k}."))
        elif v == "???":
            found.append(f"{prefix}{k}")
    return found


def resolve(cfg: DictConfig, source: str) -> DictConfig:
    """Resolve every interpolation now, so that a bad one fails before any work starts."""
    missing = _missing_keys(OmegaConf.to_container(cfg, resolve=False))
    if missing:
        raise ConfigError(f"config key '{missing[0]}' must be set (in {source} or as key=value)")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise ConfigError(str(cause)) from e
        key = getattr(e, "full_key", None) or "?"
        raise ConfigError(f"cannot resolve config key '{key}' of {source}: {str(e).splitlines()[0]}") from e
    return cfg


def load_experiment(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Defaults ← experiment file ← ``key=value`` overrides, checked strictly and fully resolved."""
    _register_resolvers()
    layers = []
    if path is not None:
        layers.append((load_yaml(path), str(path)))
    if overrides:
        layers.append((parse_overrides(overrides), "the command-line overrides"))
    cfg = strict_merge(load_yaml(DEFAULTS_FILE), *layers)
    cfg = resolve(cfg, str(path or DEFAULTS_FILE))
    OmegaConf.set_readonly(cfg, True)
    return cfg


def add_experiment_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--experiment FILE`` plus trailing ``key=value`` overrides, shared by every stage CLI."""
    parser.add_argument(
        "--experiment",
        metavar="FILE",
        required=required,
        help="experiment YAML (keys and defaults: configs/defaults.yaml)",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. noise.sigma_255=100"
    )


def save_resolved(cfg: DictConfig | Mapping, out_dir: str | os.PathLike, name: str = RESOLVED_NAME) -> Path:
    """Write the resolved config next to a stage's outputs; returns its path."""
    path = Path(out_dir) / name
    container = cfg if isinstance(cfg, DictConfig | ListConfig) else OmegaConf.create(dict(cfg))
    atomic_write_text(path, OmegaConf.to_yaml(container, resolve=True))
    return path
