"""Branching off a checkpoint (restart / continue), the kept switch checkpoint, exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from nc_helpers import (
    FAST,
    assert_states_equal,
    make_blurred_copy,
    model_state,
    read_metrics,
    train,
)
from train_helpers import TINY_CONFIG, make_cfg

from dinov2.train.checkpointing import list_checkpoints
from dinov2.train.train import build_meta_arch, build_optimizer, load_initial_state
from dinov2.utils.config import load_training_config
from utils.config import ConfigError

# A 3-epoch "denoised" run of 2 iterations per epoch whose epoch-2 checkpoint is the switch point.
SOURCE = (
    *FAST,
    "optim.epochs=3",
    "train.keep_checkpoint_epochs=[2]",
    "train.checkpoint_keep=1",
    "train.checkpoint_period_iterations=5",
)
SWITCH_ITERATION = 4


@pytest.fixture(scope="module")
def denoised_root(image_root, tmp_path_factory) -> Path:
    return make_blurred_copy(image_root, tmp_path_factory.mktemp("denoised"))


@pytest.fixture(scope="module")
def source_run(denoised_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("n2n_dinov2")
    train(make_cfg(out, denoised_root, *SOURCE))
    return out


def test_switch_epoch_checkpoint_is_written_and_kept_whatever_the_retention(source_run):
    # Period 5 and keep-1 alone would leave only model_0000006; epoch 2 (iteration 4) is pinned.
    assert [i for i, _ in list_checkpoints(source_run)] == [6, SWITCH_ITERATION]


def test_restart_takes_the_weights_and_resets_optimizer_iteration_and_schedules(
    source_run, image_root, tmp_path
):
    switch = source_run / f"model_{SWITCH_ITERATION:07d}.pth"
    cfg = make_cfg(
        tmp_path,
        image_root,
        *FAST,
        "optim.epochs=1",
        f"branch.checkpoint={switch}",
        "branch.mode=restart",
        "train.stop_at_iteration=1",
    )
    model = build_meta_arch(cfg, torch.device("cpu"))
    optimizer = build_optimizer(cfg, model.get_params_groups())
    assert load_initial_state(cfg, model, optimizer, resume=True) == (0, 0)
    assert_states_equal(model.state_dict(), model_state(switch))  # student, teacher and centres
    assert optimizer.state_dict()["state"] == {}

    train(cfg)
    first = read_metrics(tmp_path)[0]
    source_at_switch = read_metrics(source_run)[SWITCH_ITERATION]
    assert first["iteration"] == 0
    assert (
        first["lr"] == 0.0 and source_at_switch["lr"] > 0
    )  # warm-up starts again at its start value
    assert (
        first["teacher_temp"] == cfg.teacher.warmup_teacher_temp < source_at_switch["teacher_temp"]
    )
    assert first["mom"] == cfg.teacher.momentum_teacher < source_at_switch["mom"]
    assert first["last_layer_lr"] == 0.0


def test_continue_reproduces_the_uninterrupted_source_run(source_run, denoised_root, tmp_path):
    switch = source_run / f"model_{SWITCH_ITERATION:07d}.pth"
    train(
        make_cfg(
            tmp_path, denoised_root, *SOURCE, f"branch.checkpoint={switch}", "branch.mode=continue"
        )
    )
    assert read_metrics(tmp_path)[0]["iteration"] == SWITCH_ITERATION
    assert read_metrics(tmp_path)[0]["lr"] == read_metrics(source_run)[SWITCH_ITERATION]["lr"]
    assert_states_equal(
        model_state(tmp_path / "model_0000006.pth"), model_state(source_run / "model_0000006.pth")
    )


def test_missing_branch_checkpoint_names_the_key_and_the_fix(image_root, tmp_path):
    cfg = make_cfg(
        tmp_path,
        image_root,
        *FAST,
        "optim.epochs=1",
        f"branch.checkpoint={tmp_path}/model_0000004.pth",
    )
    with pytest.raises(FileNotFoundError, match="branch.checkpoint.*keep_checkpoint_epochs"):
        train(cfg)


def test_an_interrupted_restart_branch_resumes_exactly_from_its_own_checkpoint_without_the_source(
    source_run, image_root, tmp_path
):
    # The NC run: a fresh 2-epoch schedule on the noisy tree from a copy of the switch checkpoint.
    switch = tmp_path / "source" / f"model_{SWITCH_ITERATION:07d}.pth"
    switch.parent.mkdir()
    shutil.copyfile(source_run / switch.name, switch)
    opts = (*FAST, "optim.epochs=2", f"branch.checkpoint={switch}", "branch.mode=restart")
    train(make_cfg(tmp_path / "straight", image_root, *opts))

    train(make_cfg(tmp_path / "split", image_root, *opts, "train.stop_at_iteration=2"))
    switch.unlink()  # the branch source is not read again once the run has checkpoints of its own
    train(make_cfg(tmp_path / "split", image_root, *opts))

    split, straight = (
        [{k: v for k, v in r.items() if k != "images_per_s"} for r in read_metrics(tmp_path / d)]
        for d in ("split", "straight")
    )
    assert [r["iteration"] for r in split] == [0, 1, 2, 3] and split == straight
    assert_states_equal(
        model_state(tmp_path / "split" / "model_0000004.pth", drop_prefix="-"),
        model_state(tmp_path / "straight" / "model_0000004.pth", drop_prefix="-"),
    )


def test_the_training_config_has_no_curriculum_phases_key(tmp_path):
    # NC / NCT are runs that branch off a checkpoint (dinov2/run methods); a phase list is refused.
    with pytest.raises(ConfigError, match="unknown config key 'curriculum'"):
        load_training_config(TINY_CONFIG, [f"train.output_dir={tmp_path}", "curriculum=[]"])
