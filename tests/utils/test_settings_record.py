"""Settings records: the one refusal helper every stage calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils.settings_record import (
    StaleOutputsError,
    check_settings,
    first_change,
    read_settings,
    recorded_digest,
    save_settings,
    settings_digest,
)

SETTINGS = {"noise.spec": "gauss_50", "n2n.n_epoch": 4, "n2n.val_photos": ("coffee",)}


def test_a_changed_key_is_refused_in_one_line_naming_key_values_and_both_choices(
    tmp_path: Path,
) -> None:
    save_settings(tmp_path, "n2n", SETTINGS)
    check_settings(
        tmp_path, "n2n", dict(SETTINGS)
    )  # same settings (a tuple recorded as a list): accepted
    with pytest.raises(StaleOutputsError) as err:
        check_settings(tmp_path, "n2n", {**SETTINGS, "n2n.n_epoch": 8}, what="the N2N run")
    message = str(err.value)
    assert "\n" not in message
    assert f"the N2N run in {tmp_path} was made with n2n.n_epoch=4, not 8" in message
    assert "name=<new>" in message and "--overwrite" in message


def test_overwrite_and_a_stage_without_outputs_are_not_refused(tmp_path: Path) -> None:
    save_settings(tmp_path, "n2n", SETTINGS)
    changed = {**SETTINGS, "noise.spec": "shot_3"}
    check_settings(tmp_path, "n2n", changed, overwrite=True)
    check_settings(
        tmp_path, "n2n", changed, has_outputs=False
    )  # it failed before writing: the fix goes through
    check_settings(
        tmp_path / "fresh", "n2n", changed
    )  # no record at all (outputs older than records)


def test_the_first_change_follows_the_new_order_and_ignores_keys_one_side_lacks() -> None:
    old = {"a": 1, "b": 2, "c": 3}
    assert first_change(old, {"c": 4, "b": 5, "a": 1}) == "c"
    assert (
        first_change(old, {"a": 1, "b": 2, "c": 3, "d": 9}) is None
    )  # a key recorded only from now on
    assert first_change(old, {"a": 1}) is None


def test_the_digest_ignores_key_order_and_follows_the_record(tmp_path: Path) -> None:
    assert settings_digest({"a": 1, "b": [2]}) == settings_digest({"b": (2,), "a": 1})
    assert settings_digest({"a": 1}) != settings_digest({"a": 2})
    assert recorded_digest(tmp_path, "pretrain") is None
    save_settings(tmp_path, "pretrain", {"a": 1})
    assert recorded_digest(tmp_path, "pretrain") == settings_digest({"a": 1})
    assert json.loads((tmp_path / ".settings.pretrain.json").read_text())["settings"] == {"a": 1}


def test_an_unreadable_record_is_one_line_with_the_way_out(tmp_path: Path) -> None:
    (tmp_path / ".settings.report.json").write_text("{not json")
    with pytest.raises(StaleOutputsError, match=r"unreadable .*--overwrite"):
        read_settings(tmp_path, "report")
