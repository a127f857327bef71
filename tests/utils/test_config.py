"""Strict experiment configs: closest-key errors, types, precedence, derived paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from utils.config import (
    DEMO_EXPERIMENT,
    ConfigError,
    check_keys,
    load_experiment,
    save_resolved,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_demo_experiment_resolves_every_path_from_name_and_noise() -> None:
    cfg = load_experiment(DEMO_EXPERIMENT)
    assert cfg.noise.spec == "gauss_100"
    assert cfg.data.noisy_root == "outputs/data/mnist5k_gauss_100"
    assert cfg.data.denoised_root == "outputs/data/mnist5k_gauss_100_n2n"
    assert cfg.run_dir == "outputs/runs/demo/gauss_100"  # a new noise level gets a new run folder


def test_open_mappings_take_new_sub_keys_from_the_command_line(tmp_path: Path) -> None:
    # demo.yaml already fills pretrain.overrides with `train`: another key still goes in, next to
    # it.
    cfg = load_experiment(DEMO_EXPERIMENT, ["pretrain.overrides.optim.base_lr=0.1"])
    assert cfg.pretrain.overrides.optim.base_lr == 0.1
    assert cfg.pretrain.overrides.train.checkpoint_period_iterations == 100


def test_typo_in_an_override_names_the_closest_valid_key() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'noise.sigma' .*did you mean 'noise.sigma_255'\?"
    ):
        load_experiment(DEMO_EXPERIMENT, ["noise.sigma=50"])


def test_typo_in_an_experiment_file_names_the_file_and_the_closest_key(tmp_path: Path) -> None:
    exp = write(tmp_path / "exp.yaml", "name: x\ndata:\n  name: d\n  clean_rot: /data\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(exp)
    message = str(err.value)
    assert "'data.clean_rot'" in message and str(exp) in message and "'data.clean_root'" in message
    assert "\n" not in message


def test_an_old_nct_section_is_one_line_naming_the_key_and_its_new_name(tmp_path: Path) -> None:
    old = write(tmp_path / "old.yaml", "name: x\nnct:\n  weight: 4.0\n  heads: live\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(old)
    assert str(err.value) == (
        f"config key 'nct.weight' in {old} is now 'anchor.weight' "
        "(the 'nct:' section is now 'anchor:')"
    )


@pytest.mark.parametrize(
    ("override", "new_key"),
    [
        ("nct.anchor_epoch=30", "'anchor.epoch'"),
        ("nct.overrides.crops.local_crops_blur_p=0.2", "'pretrain.nct_overrides'"),
        ("nct.typo=1", None),
    ],
)
def test_each_old_nct_key_names_its_new_key(override: str, new_key: str | None) -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment(DEMO_EXPERIMENT, [override])
    message = str(err.value)
    old_key = override.split("=")[0].split(".")[:2]
    assert f"config key '{'.'.join(old_key)}'" in message and "now 'anchor:'" in message
    assert (f"is now {new_key}" in message) if new_key else ("is unknown" in message)


def test_wrong_type_is_refused_with_the_expected_type() -> None:
    with pytest.raises(ConfigError, match=r"'noise.sigma_255' .* expects a number"):
        load_experiment(DEMO_EXPERIMENT, ["noise.sigma_255=abc"])
    with pytest.raises(ConfigError, match=r"'data.splits' .* expects a list"):
        load_experiment(DEMO_EXPERIMENT, ["data.splits=train"])


def test_overrides_win_over_the_experiment_file_and_change_derived_paths() -> None:
    cfg = load_experiment(DEMO_EXPERIMENT, ["noise.family=shot", "noise.lam=3"])
    assert cfg.noise.spec == "shot_3"
    assert cfg.data.noisy_root.endswith("mnist5k_shot_3")
    assert load_experiment(DEMO_EXPERIMENT, ["noise.spec=speckle_0.7"]).data.noisy_root.endswith(
        "speckle_0.7"
    )


def test_bad_noise_level_names_the_config_key() -> None:
    with pytest.raises(ConfigError, match=r"'noise.sigma_255'.*> 0"):
        load_experiment(DEMO_EXPERIMENT, ["noise.sigma_255=-3"])
    with pytest.raises(ConfigError, match="'noise.family' is 'foo'"):
        load_experiment(DEMO_EXPERIMENT, ["noise.family=foo"])


def test_a_required_key_left_unset_is_named() -> None:
    with pytest.raises(ConfigError, match="config key 'data.name' must be set"):
        load_experiment(None, [])


def test_unparsable_yaml_and_missing_files_name_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "name: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse .*bad.yaml"):
        load_experiment(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_experiment(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_experiment(DEMO_EXPERIMENT, ["noise.sigma_255"])


def test_open_mappings_accept_any_key_and_numbers_widen_to_float() -> None:
    defaults = {"a": {"b": 1.0, "free": {}}, "c": None}
    check_keys(defaults, {"a": {"b": 2, "free": {"anything": [1, 2]}}, "c": "x"}, "test")
    with pytest.raises(ConfigError, match="expects a number"):
        check_keys(defaults, {"a": {"b": True}}, "test")


def test_save_resolved_writes_the_config_with_paths_resolved(tmp_path: Path) -> None:
    cfg = load_experiment(DEMO_EXPERIMENT, ["noise.sigma_255=50"])
    path = save_resolved(cfg, tmp_path / "out")
    saved = OmegaConf.load(path)
    assert saved.data.noisy_root == "outputs/data/mnist5k_gauss_50"
    assert "${" not in path.read_text()
    assert list((tmp_path / "out").iterdir()) == [path], "no temp file is left behind"


def test_loaded_configs_are_read_only() -> None:
    cfg = load_experiment(DEMO_EXPERIMENT)
    with pytest.raises(Exception, match="read-only"):
        cfg.noise.seed = 1


def test_every_shipped_experiment_file_loads() -> None:
    root = Path(__file__).resolve().parents[2] / "configs" / "experiments"
    files = sorted(root.rglob("*.yaml"))
    assert files, "no experiment files found"
    code = (
        "import sys; from utils.config import load_experiment; "
        "[load_experiment(f) for f in sys.argv[1:]]"
    )
    subprocess.run([sys.executable, "-c", code, *map(str, files)], check=True)
