"""The CLI and its shell wrapper: a real run writes the table, JSON and plot; reruns skip finished
seeds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from toy_mnist.config import load_config
from toy_mnist.mlp_exp import main, run

REPO = Path(__file__).resolve().parents[2]


def test_shell_script_runs_every_setting_and_writes_table_json_and_plot(
    mnist_root: Path, tiny_args: list[str], tmp_path: Path, usage_error: Callable
) -> None:
    out = tmp_path / "toy"
    root = mnist_root  # a real --mnist-root, quicker than MNIST-5k's parse
    proc = subprocess.run(
        [
            "sh",
            str(REPO / "toy_mnist" / "mlp_exp.sh"),
            "2",
            f"out={out}",
            f"mnist_root={root}",
            *tiny_args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| clean 1 → noisy 1 epochs | noisy (std 0.4) |" in proc.stdout and " ± " in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == "mnist" and set(results["per_seed"]) == {"0", "1"}
    for key, s in results["summary"].items():
        values = [acc[key] for acc in results["per_seed"].values()]
        assert s["n"] == 2 and abs(s["mean"] - sum(values) / 2) < 1e-12
        assert abs(s["std"] - abs(values[0] - values[1]) / 2**0.5) < 1e-9  # ddof=1 over 2 seeds
    with Image.open(out / "accuracy.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert (out / "seed_1" / "clean_epoch1.pt").is_file()
    lines = (out / "seed_0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["setting"] for line in lines] == [
        "clean",
        "clean",
        "noisy",
        "clean_noisy",
    ]

    # a rerun reads the finished seeds instead of training again: same numbers
    again = run(load_config(overrides=["seeds=2", f"out={out}", f"mnist_root={root}", *tiny_args]))
    assert again["per_seed"] == results["per_seed"]
    # other data or another protocol in the same folder is refused unless --overwrite
    for other in (["n_train=100"], [f"mnist_root={root}", "protocol.probe_epochs=2"]):
        error = usage_error(main, ["seeds=1", f"out={out}", *tiny_args, *other])
        assert "was made with another config or data; pass --overwrite" in error


def test_missing_mnist_root_is_a_one_line_error(tmp_path: Path, usage_error: Callable) -> None:
    error = usage_error(main, [f"mnist_root={tmp_path / 'nope'}", f"out={tmp_path / 'o'}"])
    assert error.startswith("error: mnist_root") and "MNIST-5k" in error
    assert not (tmp_path / "o").exists()  # nothing written before the data is there


def test_table_labels_come_from_the_config(
    tiny_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["seeds=1", f"out={tmp_path / 'o'}", "n_train=100", "n_test=50", *tiny_args]
    assert main([*args, "protocol.noise_std=0.8", "protocol.switch_epoch=1"]) == 0
    out = capsys.readouterr().out
    assert (
        "| clean 1 → noisy 1 epochs | noisy (std 0.8) |" in out
        and "| noisy | noisy (std 0.8) |" in out
    )
    assert "std 0.4" not in out and "clean 30" not in out
    assert "noisy (std 0.8)" in (tmp_path / "o" / "results.md").read_text()


def test_epoch_scale_must_be_auto_or_positive(tmp_path: Path, usage_error: Callable) -> None:
    for bad in ("0", "-1", "fast", "true"):
        error = usage_error(main, [f"epoch_scale={bad}", f"out={tmp_path / 'o'}"])
        assert error.startswith("error: config key 'epoch_scale' must be auto (null) or a number")
    assert not (tmp_path / "o").exists()
