"""``configs/toy_mnist.yaml``: the authors' protocol by default, overrides, strict keys, old
results."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from toy_mnist.config import DEFAULT_CONFIG, load_config, paper_protocol
from toy_mnist.mlp_exp import main, run
from toy_mnist.train import ToyConfig, config_dict
from utils.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_authors_protocol_of_the_readme_table() -> None:
    # toy_mnist/README.md, "Protocol": settings clean 50 / noisy 50 epochs, clean_noisy from the
    # clean run's epoch 30 then 20 epochs; probe 50 epochs; Adam lr 1e-4 (both), batch 256;
    # 0.5 × covariance penalty; Gaussian noise std 0.4
    assert paper_protocol() == ToyConfig(
        clean_epochs=50,
        noisy_epochs=50,
        switch_epoch=30,
        curriculum_epochs=20,
        probe_epochs=50,
        batch_size=256,
        lr=1e-4,
        probe_lr=1e-4,
        cov_weight=0.5,
        noise_std=0.4,
    )
    cfg = load_config()
    # run options: 20 repeats (the paper's), embedded MNIST-5k, all digits, step-matched epochs
    assert (cfg.seeds, cfg.mnist_root, cfg.n_train, cfg.n_test) == (20, None, 0, 0)
    assert (cfg.out, cfg.device, cfg.threads, cfg.epoch_scale) == (
        "outputs/toy_mnist",
        "auto",
        1,
        None,
    )
    assert DEFAULT_CONFIG == REPO / "configs" / "toy_mnist.yaml"


def test_a_config_file_and_overrides_change_keys_later_layer_winning(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("seeds: 5\nprotocol:\n  noise_std: 0.8\n")
    cfg = load_config(mine, ["seeds=3", "epoch_scale=1", "protocol.switch_epoch=10"])
    assert (cfg.seeds, cfg.epoch_scale) == (3, 1)
    assert (cfg.protocol.noise_std, cfg.protocol.switch_epoch) == (0.8, 10)
    assert cfg.protocol.clean_epochs == 50  # untouched keys keep the defaults
    assert load_config(DEFAULT_CONFIG) == load_config()  # the packaged file as --config: defaults


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["protocol.noise_sd=0.8"],
            "unknown config key 'protocol.noise_sd' in the command-line overrides; "
            "did you mean 'protocol.noise_std'?",
        ),
        (
            ["seed=3"],
            "unknown config key 'seed' in the command-line overrides; did you mean 'seeds'?",
        ),
        (["seeds=many"], "config key 'seeds' in the command-line overrides expects an integer"),
        (["seeds=0"], "config key 'seeds' must be >= 1, got 0"),
        (["protocol.switch_epoch=60"], "config key 'protocol.switch_epoch' must be in 1..protocol"),
        (["protocol.lr=0"], "config key 'protocol.lr' must be > 0, got 0"),
        (["seeds=null"], "config key 'seeds' must not be null (default 20)"),
        (["protocol=null"], "config key 'protocol' must not be null"),
        (["protocol.noise_std=null"], "config key 'protocol.noise_std' must not be null"),
        (["epoch_scale=-1"], "config key 'epoch_scale' must be auto (null) or a number > 0"),
        (["noise_std"], "override 'noise_std' is not of the form key=value"),
    ],
)
def test_a_bad_key_or_value_is_a_one_line_error_naming_it(
    overrides: list[str], message: str, tmp_path: Path, usage_error: Callable
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=overrides)
    text = str(exc.value)
    assert text.startswith(message) and "\n" not in text
    # the command: that line, exit code 2, before anything is written
    assert usage_error(main, [*overrides, f"out={tmp_path / 'o'}"]) == f"error: {text}"
    assert not (tmp_path / "o").exists()


def test_an_unknown_key_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol:\n  clean_epoch: 10\n")
    with pytest.raises(ConfigError, match=f"'protocol.clean_epoch' in {bad}; did you mean"):
        load_config(bad)


def test_a_former_flag_points_to_its_key_value_override() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "toy_mnist.mlp_exp", "--noise-std", "0.8"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "protocol.noise_std=VALUE" in proc.stderr.splitlines()[-1]


def test_a_folder_made_before_the_yaml_config_is_read_back_not_recomputed(tmp_path: Path) -> None:
    # seed_0/result.json as the dataclass-and-flags version wrote it for `sh toy_mnist/mlp_exp.sh 1`
    # on MNIST-5k (the paper's protocol step-matched by 60000 / 4000 = 15)
    old_config = {
        "clean_epochs": 750,
        "noisy_epochs": 750,
        "switch_epoch": 450,
        "curriculum_epochs": 300,
        "probe_epochs": 750,
        "batch_size": 256,
        "lr": 0.0001,
        "probe_lr": 0.0001,
        "cov_weight": 0.5,
        "noise_std": 0.4,
    }
    accuracy = {"clean/noisy": 0.555, "noisy/noisy": 0.628, "clean_noisy/noisy": 0.815}
    accuracy["clean/clean"] = 0.907
    record = {"seed": 0, "data": "mnist5k", "config": old_config, "accuracy": accuracy}
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / "result.json").write_text(json.dumps(record, indent=1) + "\n")
    assert list(config_dict(paper_protocol())) == list(old_config)  # same keys, same order
    results = run(load_config(overrides=["seeds=1", f"out={tmp_path}"]))
    assert results["per_seed"] == {"0": accuracy} and results["config"] == old_config
    assert sorted(p.name for p in (tmp_path / "seed_0").iterdir()) == ["result.json"]
