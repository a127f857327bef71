"""The training loop on CPU: learning, exact resume, corrupt checkpoints, non-finite losses, CLI."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import REPO, TINY_CONFIG, make_cfg

from dinov2.train.checkpointing import list_checkpoints, load_checkpoint_file
from dinov2.train.train import METRICS_FILE, NonFiniteLossError, build_meta_arch, do_train


def train(cfg, resume: bool = True):
    torch.manual_seed(cfg.train.seed)
    model = build_meta_arch(cfg, torch.device("cpu"))
    summary = do_train(cfg, model, resume=resume)
    return model, summary


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / METRICS_FILE).read_text().splitlines()]


def test_tiny_model_trains_20_iterations_with_finite_decreasing_loss(tmp_path, image_root):
    # Sinkhorn-Knopp targets, a constant teacher temperature and no warm-up: the loss falls from the
    # start.
    cfg = make_cfg(
        tmp_path,
        image_root,
        "optim.epochs=2",
        "optim.base_lr=0.05",
        "optim.warmup_epochs=0",
        "teacher.warmup_teacher_temp_epochs=0",
        "train.centering=sinkhorn_knopp",
    )
    _, summary = train(cfg)
    records = read_metrics(tmp_path)
    assert [r["iteration"] for r in records] == list(range(20))
    losses = [r["total_loss"] for r in records]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    keys = {
        "dino_local_crops_loss",
        "dino_global_crops_loss",
        "ibot_loss",
        "koleo_loss",
        "total_loss",
        "lr",
        "wd",
        "mom",
        "teacher_temp",
        "last_layer_lr",
        "images_per_s",
    }
    assert keys <= set(records[-1])
    assert summary["iteration"] == 20
    # Official export layout: eval/training_<iteration>/teacher_checkpoint.pth = {"teacher":
    # state_dict}.
    export = load_checkpoint_file(tmp_path / "eval" / "training_19" / "teacher_checkpoint.pth")
    assert set(export) == {"teacher"} and "backbone.cls_token" in export["teacher"]


def test_resume_after_stop_gives_bit_identical_parameters(tmp_path, image_root):
    # Stochastic depth draws from the training RNG, which the checkpoint must restore.
    common = (
        "optim.epochs=1",
        "train.checkpoint_period_iterations=3",
        "student.drop_path_rate=0.2",
    )
    straight, _ = train(
        make_cfg(tmp_path / "straight", image_root, *common, "train.stop_at_iteration=6")
    )
    train(make_cfg(tmp_path / "split", image_root, *common, "train.stop_at_iteration=3"))
    assert [i for i, _ in list_checkpoints(tmp_path / "split")] == [3]
    resumed, summary = train(
        make_cfg(tmp_path / "split", image_root, *common, "train.stop_at_iteration=6")
    )
    assert summary["iteration"] == 6
    expected, got = straight.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for k in expected:
        assert torch.equal(expected[k], got[k]), k
    # The metrics of the resumed run continue the first run's lines.
    assert [r["iteration"] for r in read_metrics(tmp_path / "split")] == list(range(6))


def test_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path, image_root, caplog):
    cfg = make_cfg(
        tmp_path,
        image_root,
        "optim.epochs=1",
        "train.checkpoint_period_iterations=2",
        "train.stop_at_iteration=4",
    )
    train(cfg)
    newest = tmp_path / "model_0000004.pth"
    newest.write_bytes(newest.read_bytes()[:1000])
    with caplog.at_level(logging.WARNING, logger="dinov2"):
        _, summary = train(cfg)
    assert "skipping checkpoint" in caplog.text and "model_0000004.pth" in caplog.text
    assert (
        summary["iteration"] == 4
    )  # resumed at 2, trained 2 more, wrote a valid model_0000004.pth
    assert load_checkpoint_file(newest)["iteration"] == 4


def test_non_finite_loss_stops_naming_the_iteration_and_keeps_last_checkpoint(tmp_path, image_root):
    cfg = make_cfg(
        tmp_path,
        image_root,
        "optim.epochs=1",
        "optim.warmup_epochs=0",
        "optim.base_lr=1.0e30",
        "optim.clip_grad=0",
        "train.checkpoint_period_iterations=1",
    )
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at iteration (\d+)") as info:
        train(cfg)
    bad_iteration = int(re.search(r"iteration (\d+)", str(info.value)).group(1))
    assert bad_iteration >= 1
    checkpoints = list_checkpoints(tmp_path)
    assert checkpoints[0][0] == bad_iteration  # nothing saved for the failed step
    ckpt = load_checkpoint_file(checkpoints[0][1])
    assert ckpt["iteration"] == bad_iteration


def test_checkpoint_retention_keeps_newest_and_pinned_iterations(tmp_path, image_root):
    cfg = make_cfg(
        tmp_path,
        image_root,
        "optim.epochs=1",
        "train.checkpoint_period_iterations=1",
        "train.checkpoint_keep=2",
        "train.keep_checkpoint_iterations=[2]",
        "train.stop_at_iteration=5",
    )
    train(cfg)
    assert [i for i, _ in list_checkpoints(tmp_path)] == [5, 4, 2]


def test_cli_trains_when_executed_as_a_file(tmp_path, image_root):
    cmd = [
        sys.executable,
        str(REPO / "dinov2" / "run" / "train" / "train.py"),
        "--config-file",
        str(TINY_CONFIG),
        "--output-dir",
        str(tmp_path),
        f"train.dataset_path=ImageNet:split=TRAIN:root={image_root}",
        "train.batch_size_per_gpu=2",
        "train.stop_at_iteration=2",
    ]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained to iteration 2" in result.stdout
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "model_0000002.pth").is_file()
    assert len(read_metrics(tmp_path)) == 2


def test_cli_config_typo_exits_2_with_the_closest_key(tmp_path, capsys):
    from dinov2.run.train.train import main

    code = main(
        ["--config-file", str(TINY_CONFIG), "--output-dir", str(tmp_path), "optim.base_lrr=0.1"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown config key 'optim.base_lrr'" in err and "did you mean 'optim.base_lr'" in err
    assert not list(tmp_path.glob("model_*.pth"))


def test_model_weights_initialise_all_networks_and_restart_at_iteration_zero(tmp_path, image_root):
    from dinov2.train.train import build_optimizer, load_initial_state

    source, _ = train(
        make_cfg(tmp_path / "source", image_root, "optim.epochs=1", "train.stop_at_iteration=2")
    )
    weights = tmp_path / "source" / "model_0000002.pth"
    cfg = make_cfg(tmp_path / "branch", image_root, f"MODEL.WEIGHTS={weights}")
    torch.manual_seed(123)
    model = build_meta_arch(cfg, torch.device("cpu"))
    optimizer = build_optimizer(cfg, model.get_params_groups())
    assert load_initial_state(cfg, model, optimizer, resume=True) == (0, 0)
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert not optimizer.state  # a fresh optimizer: only the weights come from MODEL.WEIGHTS


def test_model_weights_rejects_a_teacher_export_with_a_clear_message(tmp_path, image_root):
    from dinov2.train.train import build_optimizer, load_initial_state

    train(
        make_cfg(
            tmp_path / "source",
            image_root,
            "optim.epochs=1",
            "evaluation.eval_period_iterations=1",
            "train.stop_at_iteration=1",
        )
    )
    export = tmp_path / "source" / "eval" / "training_0" / "teacher_checkpoint.pth"
    cfg = make_cfg(tmp_path / "branch", image_root, f"MODEL.WEIGHTS={export}")
    model = build_meta_arch(cfg, torch.device("cpu"))
    with pytest.raises(ValueError, match="MODEL.WEIGHTS=.*is not a training checkpoint"):
        load_initial_state(cfg, model, build_optimizer(cfg, model.get_params_groups()), resume=True)
