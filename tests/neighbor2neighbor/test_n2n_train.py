"""Training: exact resume, the reference learning-rate schedule, skip when finished, CLI errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from neighbor2neighbor.train import lr_milestones, train

# Subprocesses single-threaded too: OpenMP spinning on a shared 2-core machine slows them ~10x.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def read_metrics(path):
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    for line in lines:
        line.pop("train_s")  # wall time, the only field allowed to differ
    return lines


def test_milestones_follow_the_reference_formula():
    assert lr_milestones(100, [0.2, 0.4, 0.6, 0.8]) == [19, 39, 59, 79]
    assert lr_milestones(5, [0.2, 0.4, 0.6, 0.8]) == [1, 2, 3]  # int(1) - 1 = 0 is never reached


def test_resume_after_interruption_gives_the_same_weights_and_metrics(
    noisy_tree, tmp_path, tiny_config
):
    straight = tiny_config(noisy_tree / "train", tmp_path / "straight")
    resumed = tiny_config(noisy_tree / "train", tmp_path / "resumed")
    train(straight)
    first = train(resumed, stop_after_epoch=2)
    assert first["epoch"] == 2 and not (tmp_path / "resumed" / "train_complete.json").exists()
    train(resumed)

    a = torch.load(tmp_path / "straight" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 5
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    metrics_a = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    assert metrics_a == read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    # lr halves after scheduler steps 1, 2, 3 (5 epochs); gamma = epoch / 5 * 2
    assert [m["lr"] for m in metrics_a] == pytest.approx([3e-4, 1.5e-4, 7.5e-5, 3.75e-5, 3.75e-5])
    assert [m["gamma"] for m in metrics_a] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0])
    assert all(m["n_steps"] == 2 for m in metrics_a)
    best = torch.load(tmp_path / "straight" / "model_best.pth", weights_only=True)
    assert best["val_psnr"] == max(m["val_psnr"] for m in metrics_a)


def test_a_finished_run_skips_itself(noisy_tree, tmp_path, tiny_config):
    cfg = tiny_config(noisy_tree / "train", tmp_path / "run", **{"n2n.n_epoch": 1})
    last = train(cfg)
    state = tmp_path / "run" / "checkpoint.pth"
    mtime = state.stat().st_mtime_ns
    assert train(cfg) == last
    assert state.stat().st_mtime_ns == mtime
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_cli_rejects_a_crop_size_the_unet_cannot_take_in_one_line(noisy_tree, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "neighbor2neighbor.train",
        "--data",
        str(noisy_tree / "train"),
        "--out-dir",
        str(tmp_path / "run"),
        "--crop-size",
        "48",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ONE_THREAD)
    assert proc.returncode == 2  # a config error (utils.cli)
    assert proc.stderr.strip().splitlines()[-1].startswith("error: config key 'n2n.crop_size'")


def test_init_scale_from_the_config_reaches_the_model(noisy_tree, tmp_path, tiny_config):
    stds = {}
    for scale in (0.1, 1.0):
        cfg = tiny_config(
            noisy_tree / "train",
            tmp_path / f"s{scale}",
            **{"n2n.n_epoch": 1, "n2n.init_scale": scale},
        )
        train(cfg)
        weight = torch.load(tmp_path / f"s{scale}" / "model_last.pth", weights_only=True)["model"][
            "dec_conv1b.weight"
        ]
        stds[scale] = weight.std().item()  # two Adam steps of lr 3e-4 barely move a 96x96x3x3 init
    assert stds[1.0] == pytest.approx(math.sqrt(2.0 / (96 * 9)), rel=0.05)
    assert stds[0.1] == pytest.approx(0.1 * math.sqrt(2.0 / (96 * 9)), rel=0.1)


def test_a_non_positive_init_scale_is_an_error_naming_the_key(noisy_tree, tmp_path, tiny_config):
    with pytest.raises(
        ValueError, match="'n2n.init_scale' must be > 0"
    ):  # refused when the config loads
        tiny_config(noisy_tree / "train", tmp_path / "run", **{"n2n.init_scale": 0.0})
    assert not (tmp_path / "run" / "checkpoint.pth").exists()
