"""``python -m toy_mnist.probe``: probes a saved encoder exactly as the table does; bad files are
one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from toy_mnist.config import load_config
from toy_mnist.mlp_exp import run
from toy_mnist.probe import main, probe


def test_probe_of_a_saved_final_encoder_reproduces_the_tables_accuracy(
    mnist_root: Path, tiny_args: list[str], tmp_path: Path
) -> None:
    root = f"mnist_root={mnist_root}"
    table = run(load_config(overrides=["seeds=2", f"out={tmp_path / 'toy'}", root, *tiny_args]))
    probe_args = [root, "epoch_scale=1", "protocol.probe_epochs=1", "protocol.batch_size=64"]
    cfg = load_config(overrides=probe_args)
    for seed in (0, 1):
        for setting in ("noisy", "clean_noisy"):
            weights = tmp_path / "toy" / f"seed_{seed}" / f"{setting}_final.pt"
            got = probe(cfg, weights, seed=seed)
            assert got["accuracy"] == table["per_seed"][str(seed)][f"{setting}/noisy"]
            assert got["probe_data"] == "noisy (std 0.4)"
    # the command, on clean digits, with --json
    weights = tmp_path / "toy" / "seed_1" / "clean_final.pt"
    out = tmp_path / "probe.json"
    argv = ["--weights", str(weights), "--seed", "1", "--clean", "--json", str(out), *probe_args]
    assert main(argv) == 0
    got = json.loads(out.read_text())
    assert got["accuracy"] == table["per_seed"]["1"]["clean/clean"] and got["probe_data"] == "clean"


def test_the_authors_state_dict_layout_loads_and_is_probed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    g = torch.Generator().manual_seed(0)
    # the published files: a bare state_dict of nn.Sequential(Linear(784, 128), ReLU, Linear(128,
    # 32)), no biases
    authors = {
        "net.0.weight": torch.randn(128, 784, generator=g) * 0.03,
        "net.2.weight": torch.randn(32, 128, generator=g),
    }
    weights = tmp_path / "noisy_mlp_final.pth"
    torch.save(authors, weights)
    got = probe(load_config(overrides=["epoch_scale=1", "protocol.probe_epochs=1"]), weights)
    assert 0.0 <= got["accuracy"] <= 1.0 and got["data"] == "mnist5k"
    assert f"{weights}: noisy (std 0.4) probe accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            {"fc1.weight": torch.zeros(128, 784), "fc2.weight": torch.zeros(32, 128)},
            "are not the toy MLP's",
        ),
        (
            {"net.0.weight": torch.zeros(128, 784), "net.2.weight": torch.zeros(10, 128)},
            "are not the toy MLP's",
        ),
        (
            {
                "net.0.weight": torch.full((128, 784), float("nan")),
                "net.2.weight": torch.zeros(32, 128),
            },
            "NaN",
        ),
        ([torch.zeros(3)], "expected a state_dict"),
        ("text", "not a PyTorch state_dict"),
    ],
)
def test_a_file_that_is_not_a_toy_encoder_is_a_one_line_error(
    tmp_path: Path, content: object, message: str, usage_error: Callable
) -> None:
    weights = tmp_path / "w.pth"
    if content == "text":
        weights.write_text("not a checkpoint\n")
    else:
        torch.save(content, weights)
    error = usage_error(main, ["--weights", str(weights)])
    assert error.startswith(f"error: --weights {weights}") and message in error
