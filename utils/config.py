"""Strict experiment configs: one YAML = one experiment.

Every key has a default in ``configs/defaults.yaml``. An experiment file and ``key=value``
overrides (OmegaConf dotlist) are merged on top of it; an unknown key or a value of the wrong type
fails before any work starts with a one-line :class:`ConfigError` naming the key and the closest
valid one (or its new name, for a key of :data:`RENAMED_KEYS`).

Conventions of the defaults file:
- a default of ``null`` or ``???`` accepts any type (``???`` must be set before use);
- a default of ``{}`` is an open mapping: any keys are accepted below it, from the experiment file
  and from the command line alike (validated by the stage that consumes it, e.g. the official DINOv2
  training config);
- an int is accepted where the default is a float, never a bool where it is a number;
- counts, sizes and seeds have lower bounds (:data:`MIN_VALUES`), checked before any work.

The noise is ``noise.spec`` (e.g. ``shot_3``) or ``noise.family`` + its level; a layer (file or
command line) that sets both is refused, and a later layer's choice wins over an earlier one's.
"""

from __future__ import annotations

import argparse
import difflib
import functools
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


# Lower bounds of the experiment keys (a zero epoch count would "finish" without a model).
MIN_VALUES: dict[str, float] = {
    "seed": 0,
    "noise.seed": 0,
    "noise.workers": 0,
    "pretrain.epochs": 1,
    "pretrain.switch_epoch": 1,
    "pretrain.curriculum_epochs": 1,
    "pretrain.ngpus": 1,
    "n2n.n_feature": 1,
    "n2n.crop_size": 1,
    "n2n.batch_size": 1,
    "n2n.n_epoch": 1,
    "n2n.n_samples_per_epoch": 0,
    "n2n.val_size": 0,
    "n2n.val_seed": 0,
    "n2n.workers": 0,
    "n2n.seed": 0,
    "denoise.batch_size": 1,
    "eval.resize_size": 1,
    "eval.crop_size": 1,
    "eval.batch_size": 1,
    "eval.num_workers": 0,
    "eval.linear.epochs": 1,
    "eval.linear.batch_size": 1,
    "eval.linear.epoch_length": 1,
    "eval.retrieval.mini_size": 8,
}
ABOVE_ZERO = ("n2n.lr", "n2n.init_scale", "eval.knn.temperature")
# Keys renamed since earlier versions (old -> new): an old file's error names the new key.
RENAMED_KEYS = {
    "nct": "anchor",
    "nct.anchor_epoch": "anchor.epoch",
    "nct.overrides": "pretrain.nct_overrides",
}
NOISE_LEVEL_KEYS = ("noise.family", "noise.sigma_255", "noise.lam", "noise.c")


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("noise_spec"):
        # Imported lazily: utils.noise imports torch, which config users may not need.
        def noise_spec(family, sigma_255, lam, c):
            from utils.noise import NoiseSpec

            if family not in ("gauss", "shot", "speckle"):
                raise ConfigError(
                    f"config key 'noise.family' is {family!r}; valid families: gauss, shot, speckle"
                )
            level = {"gauss": sigma_255, "shot": lam, "speckle": c}[family]
            if level is None:
                key = {"gauss": "sigma_255", "shot": "lam", "speckle": "c"}[family]
                raise ConfigError(
                    f"config key 'noise.{key}' must be a number > 0 for "
                    f"noise.family={family}, got null"
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
    if isinstance(default, str) and default.startswith("${"):
        # a default that derives from another key (denoise.splits: ${data.splits}) takes its type
        return True
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


def _open_paths(tree: Mapping, prefix: str = "") -> set[str]:
    """Dotted paths whose default is ``{}`` (open mappings)."""
    found = set()
    for k, v in tree.items():
        if isinstance(v, Mapping):
            found |= {f"{prefix}{k}"} if not v else _open_paths(v, f"{prefix}{k}.")
    return found


def _renamed_key_message(full: str, value: Any, source: str, all_keys: list[str]) -> str:
    """The error for a key of :data:`RENAMED_KEYS` (a section: its first key, with its new name)."""
    section = RENAMED_KEYS[full]
    if not isinstance(value, Mapping) or not value:
        return f"config key '{full}' in {source} is now '{section}'"
    old = f"{full}.{next(iter(value))}"
    new = RENAMED_KEYS.get(old, f"{section}.{old.removeprefix(full + '.')}")
    renamed = f" is now '{new}'" if new in all_keys else " is unknown"
    return f"config key '{old}' in {source}{renamed} (the '{full}:' section is now '{section}:')"


def check_keys(
    defaults: Mapping,
    override: Mapping,
    source: str,
    prefix: str = "",
    open_paths: set[str] = frozenset(),
) -> None:
    """Raise :class:`ConfigError` for the first key of ``override`` unknown to ``defaults`` or of a
    wrong type.

    Keys below an ``open_paths`` mapping are not checked (an earlier layer may already have filled
    it)."""
    all_keys = _flat_keys(defaults)
    for key, value in override.items():
        full = f"{prefix}{key}"
        if key not in defaults and full in RENAMED_KEYS:
            raise ConfigError(_renamed_key_message(full, value, source, all_keys))
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
        if (
            isinstance(default, dict)
            and default
            and isinstance(value, dict)
            and full not in open_paths
        ):
            check_keys(default, value, source, full + ".", open_paths)


def strict_merge(defaults: DictConfig, *layers: tuple[DictConfig, str]) -> DictConfig:
    """Merge ``(config, source_name)`` layers onto ``defaults`` after checking keys and types."""
    merged = defaults
    # Every layer is checked against the defaults (not the merge so far): an experiment file's
    # ``sigma_255: 100`` does not make a later ``sigma_255=12.5`` "the wrong type".
    base = OmegaConf.to_container(defaults, resolve=False)
    open_paths = _open_paths(base)
    for layer, source in layers:
        over = OmegaConf.to_container(layer, resolve=False)
        check_keys(base, over, source, open_paths=open_paths)
        merged = OmegaConf.merge(merged, layer)
    return merged


def load_yaml(path: str | os.PathLike) -> DictConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml.YAMLError and friends: report file, line, column and the problem
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None)
        if mark is not None:
            raise ConfigError(
                f"cannot parse {path}: line {mark.line + 1}, column {mark.column + 1}: "
                f"{problem or type(e).__name__}"
            ) from None
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot parse {path}: {reason}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping of config keys at top level")
    return cfg


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(
            f"override {bad[0]!r} is not of the form key=value (e.g. noise.sigma_255=100)"
        )
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
        raise ConfigError(
            f"cannot resolve config key '{key}' of {source}: {str(e).splitlines()[0]}"
        ) from e
    return cfg


def _noise_choice(layers: Sequence[tuple[DictConfig, str]]) -> str | None:
    """``"spec"`` or ``"family"``: which way of giving the noise the last layer that gives one uses.

    A layer that sets ``noise.spec`` and a family or level together is ambiguous and refused."""
    choice = None
    for layer, source in layers:
        noise = OmegaConf.select(layer, "noise")
        if not isinstance(noise, DictConfig):
            continue
        level_keys = [k for k in NOISE_LEVEL_KEYS if k.split(".")[1] in noise]
        if "spec" in noise and level_keys:
            raise ConfigError(
                f"{source} sets both 'noise.spec' and '{level_keys[0]}'; set either the spec "
                "(e.g. noise.spec=shot_3) or the family and its level"
            )
        choice = "spec" if "spec" in noise else ("family" if level_keys else choice)
    return choice


def check_bounds(
    cfg: DictConfig, min_values: Mapping[str, float], above_zero: Iterable[str] = ()
) -> None:
    """``min_values`` (dotted key → minimum) and ``above_zero`` (keys that must be > 0) of ``cfg``;
    each error names the key. Keys that are absent or not numbers are left to other checks."""
    for key, minimum in min_values.items():
        value = OmegaConf.select(cfg, key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < minimum:
            raise ConfigError(f"config key '{key}' must be >= {minimum:g}, got {value}")
    for key in above_zero:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not value > 0:
            raise ConfigError(f"config key '{key}' must be > 0, got {value}")


def check_values(cfg: DictConfig) -> None:
    """Lower bounds of :data:`MIN_VALUES` / :data:`ABOVE_ZERO`; each error names the key."""
    check_bounds(cfg, MIN_VALUES, ABOVE_ZERO)
    spec = OmegaConf.select(cfg, "noise.spec")
    if (
        spec is not None
    ):  # set directly (noise.spec=...) it skipped the family/level resolver's check
        from utils.noise import parse_noise_spec  # lazily, as above: utils.noise imports torch

        try:
            parse_noise_spec(spec)
        except ValueError as e:
            raise ConfigError(f"config key 'noise.spec': {e}") from None
    for k in OmegaConf.select(cfg, "eval.knn.nb_knn") or ():
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"config key 'eval.knn.nb_knn' must list integers >= 1, got {k!r}")


def load_experiment(
    path: str | os.PathLike | None = None, overrides: Sequence[str] = ()
) -> DictConfig:
    """Defaults ← experiment file ← ``key=value`` overrides, checked strictly and fully resolved."""
    _register_resolvers()
    layers = []
    if path is not None:
        layers.append((load_yaml(path), str(path)))
    if overrides:
        layers.append((parse_overrides(overrides), "the command-line overrides"))
    defaults = load_yaml(DEFAULTS_FILE)
    spec_default = OmegaConf.to_container(defaults, resolve=False)["noise"][
        "spec"
    ]  # the interpolation itself
    cfg = strict_merge(defaults, *layers)
    if _noise_choice(layers) == "family":  # a later family/level wins over an earlier spec
        cfg.noise.spec = spec_default
    cfg = resolve(cfg, str(path or DEFAULTS_FILE))
    check_values(cfg)
    OmegaConf.set_readonly(cfg, True)
    return cfg


_MISSING_KEY = object()


@functools.cache
def _defaults() -> DictConfig:
    return load_yaml(DEFAULTS_FILE)


def default_value(key: str) -> Any:
    """The default of ``key`` in ``configs/defaults.yaml`` (read once, plain Python values).

    Command-line flags that mirror an experiment key take their default from here, so the flag and
    the YAML cannot disagree."""
    value = OmegaConf.select(_defaults(), key, default=_MISSING_KEY)
    if value is _MISSING_KEY:
        raise KeyError(f"{key!r} is not a key of {DEFAULTS_FILE}")
    return OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows the flags' defaults (the YAML's for mirrored flags), unless there is none
    (None, empty, an off switch)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        store_true = action.const is True and action.default is False
        if not action.option_strings or action.default in (None, "", []) or store_true:
            return action.help
        return super()._get_help_string(action)


def add_experiment_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--experiment FILE`` plus trailing ``key=value`` overrides, shared by every stage CLI."""
    parser.add_argument(
        "--experiment",
        metavar="FILE",
        required=required,
        help="experiment YAML (keys and defaults: configs/defaults.yaml)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. noise.sigma_255=100",
    )


def save_resolved(
    cfg: DictConfig | Mapping, out_dir: str | os.PathLike, name: str = RESOLVED_NAME
) -> Path:
    """Write the resolved config next to a stage's outputs; returns its path."""
    path = Path(out_dir) / name
    container = cfg if isinstance(cfg, DictConfig | ListConfig) else OmegaConf.create(dict(cfg))
    atomic_write_text(path, OmegaConf.to_yaml(container, resolve=True))
    return path
