"""Branching off a checkpoint (restart / continue), the kept switch checkpoint, and single-run curricula."""

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
from omegaconf import OmegaConf
from train_helpers import TINY_CONFIG, make_cfg

from dinov2.train.checkpointing import list_checkpoints, load_checkpoint_file
from dinov2.train.curriculum import parse_curriculum
from dinov2.train.train import (
    build_meta_arch,
    build_optimizer,
    get_args_parser,
    load_initial_state,
    main,
)
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


def _curriculum_config(tmp_path: Path, noisy: Path, denoised: Path, **second_phase) -> Path:
    """Training YAML: the tiny preset + the NC curriculum (2 of 3 epochs denoised, then 1 fresh epoch noisy)."""
    cfg = OmegaConf.load(TINY_CONFIG)
    (
        cfg.train.batch_size_per_gpu,
        cfg.train.OFFICIAL_EPOCH_LENGTH,
        cfg.train.checkpoint_period_iterations,
    ) = 4, 2, 1
    cfg.optim.warmup_epochs, cfg.teacher.warmup_teacher_temp_epochs = 1, 1
    cfg.curriculum = [
        {
            "dataset_path": f"ImageNet:split=TRAIN:root={denoised}",
            "epochs": 2,
            "schedule_epochs": 3,
        },
        {
            "dataset_path": f"ImageNet:split=TRAIN:root={noisy}",
            "epochs": 1,
            "restart": True,
            **second_phase,
        },
    ]
    OmegaConf.save(cfg, tmp_path / "nc.yaml")
    return tmp_path / "nc.yaml"


def test_single_run_curriculum_equals_the_separate_runs_and_resumes_across_the_boundary(
    source_run, image_root, denoised_root, tmp_path
):
    # The separate NC run: restart a fresh 1-epoch schedule on the noisy tree from the switch checkpoint.
    switch = source_run / f"model_{SWITCH_ITERATION:07d}.pth"
    train(
        make_cfg(
            tmp_path / "nc", image_root, *FAST, "optim.epochs=1", f"branch.checkpoint={switch}"
        )
    )

    out = tmp_path / "curriculum"
    args = [
        "--config-file",
        str(_curriculum_config(tmp_path, image_root, denoised_root)),
        "--output-dir",
        str(out),
    ]
    summary = main(get_args_parser().parse_args(args))
    assert summary["iteration"] == 2 and len(summary["phases"]) == 2
    assert_states_equal(model_state(out / "phase_0" / "model_0000004.pth"), model_state(switch))
    final = model_state(out / "phase_1" / "model_0000002.pth")
    assert_states_equal(final, model_state(tmp_path / "nc" / "model_0000002.pth"))
    assert (out / "phase_1" / "eval" / "training_1" / "teacher_checkpoint.pth").is_file()

    # Interrupted in the second phase: phase 0 is skipped, phase 1 resumes from its own checkpoint.
    (out / "phase_1" / "model_0000002.pth").unlink()
    summary = main(get_args_parser().parse_args(args))
    assert summary["phases"][0]["skipped"] and [
        r["iteration"] for r in read_metrics(out / "phase_1")
    ] == [0, 1]
    assert_states_equal(model_state(out / "phase_1" / "model_0000002.pth"), final)

    # Interrupted right at the boundary: phase 1 starts again from phase 0's final checkpoint.
    shutil.rmtree(out / "phase_1")
    main(get_args_parser().parse_args(args))
    assert_states_equal(model_state(out / "phase_1" / "model_0000002.pth"), final)
    assert load_checkpoint_file(out / "phase_1" / "model_0000002.pth")["iteration"] == 2


def test_curriculum_phase_with_an_unknown_key_names_the_phase_and_closest_key():
    cfg = OmegaConf.create(
        {
            "curriculum": [
                {"dataset_path": "ImageNet:split=TRAIN:root=/d", "epochs": 1},
                {"dataset_path": "ImageNet:split=TRAIN:root=/n", "epoch": 1},
            ]
        }
    )
    with pytest.raises(ConfigError, match=r"curriculum\[1\].*epochs"):
        parse_curriculum(cfg)


def test_curriculum_phase_schedule_defaults_to_its_epochs_and_rejects_a_shorter_one():
    cfg = OmegaConf.create(
        {"curriculum": [{"dataset_path": "ImageNet:split=TRAIN:root=/d", "epochs": 3}]}
    )
    assert parse_curriculum(cfg)[0].schedule_epochs == 3
    cfg.curriculum[0].schedule_epochs = 2
    with pytest.raises(ConfigError, match="schedule_epochs"):
        parse_curriculum(cfg)


def test_a_continued_phase_keeps_the_previous_schedule_and_may_not_run_past_its_end(tmp_path):
    from dinov2.train.curriculum import phase_configs
    from dinov2.utils.config import load_training_config

    phases = [
        "curriculum=[{dataset_path: 'ImageNet:split=TRAIN:root=/d', epochs: 2, schedule_epochs: 3},"
        " {dataset_path: 'ImageNet:split=TRAIN:root=/n', epochs: 2, restart: false}]"
    ]
    cfg = load_training_config(TINY_CONFIG, [f"train.output_dir={tmp_path}", *phases])
    with pytest.raises(ConfigError, match=r"curriculum\[1\].*runs past its end"):
        phase_configs(cfg)
    cfg.curriculum[1].epochs = 1  # 2 + 1 epochs of the 3-epoch schedule continued: fine
    first, second = phase_configs(cfg)
    assert second.optim.epochs == 3 and second.branch.mode == "continue"
    assert (first.train.stop_at_iteration, second.train.stop_at_iteration) == (
        20,
        30,
    )  # preset: 10 iterations/epoch


def test_curriculum_phase_with_paired_root_trains_nct_anchored_to_the_previous_phase(
    image_root, denoised_root, tmp_path
):
    config = _curriculum_config(tmp_path, image_root, denoised_root, paired_root=str(denoised_root))
    out = tmp_path / "nct"
    main(
        get_args_parser().parse_args(
            ["--config-file", str(config), "--output-dir", str(out), "anchor.weight=3.0"]
        )
    )
    phase_1 = OmegaConf.load(out / "phase_1" / "config.yaml")
    assert (
        phase_1.anchor.checkpoint == str(out / "phase_0" / "model_0000004.pth")
        and phase_1.anchor.weight == 3.0
    )
    assert (
        phase_1.train.dataset_path.startswith("PairedImageNet:")
        and phase_1.branch.mode == "restart"
    )
    assert all(r["anchor_dino_global_crops_loss"] > 0 for r in read_metrics(out / "phase_1"))
    assert "anchor_ibot_loss" not in read_metrics(out / "phase_0")[0]
