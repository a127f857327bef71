"""Settings records: a stage's outputs remember the settings that made them.

Every stage (noise, Neighbor2Neighbor, denoise, each pretraining method, each evaluation, report)
calls :func:`check_settings` with the settings that determine its outputs, before any work, and
:func:`save_settings` when it starts writing. A re-run whose settings differ from the recorded
ones is refused with one line naming the first key that changed and the two ways out (a new
experiment ``name``, whose folder is new, or ``--overwrite``), instead of skipping or resuming
into outputs that were made with other settings.

The record is ``<out_dir>/.settings.<stage>.json`` (a dot-file: dataset scans skip it):
``{"settings": {key: value}, "digest": "<16 hex>"}``. Settings are flat ``{config key: value}``
mappings whose values are JSON (lists, numbers, strings, ...). Outputs written before records
existed have none and are accepted as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from utils.atomic import atomic_write_text
from utils.config import ConfigError

log = logging.getLogger(__name__)

RECORD_PREFIX = ".settings."


class StaleOutputsError(ConfigError):
    """Outputs exist that were made with other settings (one-line message naming the changed
    key)."""


def normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as plain JSON values (tuples → lists, OmegaConf containers → dicts/lists, paths
    → str)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def plain(value: Any) -> Any:
        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return value

    return json.loads(json.dumps({str(k): plain(v) for k, v in settings.items()}, default=str))


def settings_digest(settings: Mapping[str, Any]) -> str:
    """16 hex digits identifying the settings (key order does not matter)."""
    text = json.dumps(normalise(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def select_settings(cfg: Any, keys: Iterable[str]) -> dict[str, Any]:
    """``{key: value}`` of dotted ``keys`` in an (OmegaConf) config, in the given order."""
    from omegaconf import OmegaConf

    return normalise({key: OmegaConf.select(cfg, key) for key in keys})


def record_path(out_dir: str | os.PathLike, stage: str) -> Path:
    return Path(out_dir) / f"{RECORD_PREFIX}{stage}.json"


def read_settings(out_dir: str | os.PathLike, stage: str) -> dict[str, Any] | None:
    """The recorded settings of ``stage`` in ``out_dir``, or None when there is no record."""
    path = record_path(out_dir, stage)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return dict(record["settings"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise StaleOutputsError(
            f"{path} is unreadable ({type(e).__name__}); pass --overwrite "
            f"to redo the outputs of {out_dir}"
        ) from None


def recorded_digest(out_dir: str | os.PathLike, stage: str) -> str | None:
    """Digest of the recorded settings (upstream stages feed it into their consumers' settings)."""
    old = read_settings(out_dir, stage)
    return None if old is None else settings_digest(old)


def first_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """The first key (in ``new``'s order) recorded in ``old`` whose value differs.

    Keys only one side has are not compared: a stage that starts recording another setting does not
    make the outputs it recorded before stale."""
    new = normalise(new)
    for key in new:
        if key in old and old[key] != new[key]:
            return key
    return None


def stale_message(
    out_dir: str | os.PathLike, what: str, key: str, old: Any, new: Any, new_place: str = "name"
) -> str:
    """The one-line refusal shared by every stage."""
    return (
        f"{what} in {out_dir} was made with {key}={json.dumps(old)}, not {json.dumps(new)}: "
        f"set a new {new_place} (e.g. {new_place}=<new>) to keep "
        "both, or pass --overwrite to redo it"
    )


def check_settings(
    out_dir: str | os.PathLike,
    stage: str,
    settings: Mapping[str, Any],
    overwrite: bool = False,
    new_place: str = "name",
    what: str | None = None,
    has_outputs: bool = True,
) -> None:
    """Refuse (:class:`StaleOutputsError`) when ``out_dir`` holds outputs of ``stage`` made with
    other settings.

    ``new_place`` is the config key that gives the stage a fresh output folder (``name`` for
    everything under the run folder); ``what`` names the outputs in the message (default: the
    stage). ``has_outputs`` False (the stage has written nothing yet but its record, e.g. it failed
    on a bad setting) lets the corrected settings through.
    """
    if overwrite or not has_outputs:
        return
    old = read_settings(out_dir, stage)
    if old is None:
        return
    key = first_change(old, settings)
    if key is not None:
        new = normalise(settings)
        raise StaleOutputsError(
            stale_message(out_dir, what or stage, key, old.get(key), new.get(key), new_place)
        )


def save_settings(out_dir: str | os.PathLike, stage: str, settings: Mapping[str, Any]) -> Path:
    """Record ``settings`` as those of ``stage``'s outputs in ``out_dir`` (atomic); returns the
    record path."""
    path = record_path(out_dir, stage)
    plain = normalise(settings)
    record = {"settings": plain, "digest": settings_digest(plain)}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path
