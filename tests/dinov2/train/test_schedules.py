"""Official schedules at chosen iterations (warm-up start/end, cosine midpoint, end, freeze)."""

from __future__ import annotations

import math

import pytest
import torch
from train_helpers import TINY_CONFIG

from dinov2.train.schedules import apply_optim_scheduler, build_schedulers
from dinov2.utils.config import load_training_config

EPOCH = 10  # OFFICIAL_EPOCH_LENGTH of the tiny config


@pytest.fixture(scope="module")
def schedules():
    cfg = load_training_config(
        TINY_CONFIG,
        [
            "optim.epochs=5",
            "optim.warmup_epochs=1",
            "optim.lr=0.1",
            "optim.min_lr=0.001",
            "teacher.warmup_teacher_temp_epochs=2",
            "optim.freeze_last_layer_epochs=1",
        ],
    )
    return build_schedulers(cfg)


def test_lr_warms_up_linearly_from_zero(schedules):
    assert schedules.at(0)["lr"] == 0.0
    assert schedules.at(EPOCH - 1)["lr"] == pytest.approx(0.1)  # linspace includes the end point
    assert schedules.at(4)["lr"] == pytest.approx(0.1 * 4 / 9)


def test_lr_cosine_midpoint_and_end(schedules):
    n_cosine = 4 * EPOCH
    mid = EPOCH + n_cosine // 2
    assert schedules.at(mid)["lr"] == pytest.approx(0.001 + 0.5 * (0.1 - 0.001))
    last = 5 * EPOCH - 1
    expected = 0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos(math.pi * (n_cosine - 1) / n_cosine))
    assert schedules.at(last)["lr"] == pytest.approx(expected)
    assert schedules.at(5 * EPOCH)["lr"] == 0.001  # past the end: final value


def test_weight_decay_and_momentum_follow_a_cosine_from_the_start(schedules):
    assert schedules.at(0)["wd"] == pytest.approx(0.04)
    assert schedules.at(25)["wd"] == pytest.approx(0.04 + 0.5 * (0.4 - 0.04))
    assert schedules.at(0)["mom"] == pytest.approx(0.992)
    assert schedules.at(25)["mom"] == pytest.approx(0.996)
    assert schedules.at(10_000)["mom"] == 1.0


def test_teacher_temperature_warms_up_then_stays(schedules):
    assert schedules.at(0)["teacher_temp"] == pytest.approx(0.04)
    assert schedules.at(2 * EPOCH - 1)["teacher_temp"] == pytest.approx(0.07)
    assert schedules.at(2 * EPOCH)["teacher_temp"] == pytest.approx(0.07)


def test_last_layer_lr_is_frozen_for_the_first_epoch(schedules):
    assert all(schedules.at(i)["last_layer_lr"] == 0.0 for i in range(EPOCH))
    assert schedules.at(EPOCH)["last_layer_lr"] == schedules.at(EPOCH)["lr"] > 0


def test_apply_optim_scheduler_uses_group_multipliers():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW(
        [
            {"params": [a], "lr_multiplier": 0.5, "wd_multiplier": 0.0, "is_last_layer": False},
            {"params": [b], "lr_multiplier": 1.0, "wd_multiplier": 1.0, "is_last_layer": True},
        ]
    )
    apply_optim_scheduler(optimizer, lr=0.2, wd=0.3, last_layer_lr=0.0)
    assert [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        (0.1, 0.0),
        (0.0, 0.3),
    ]
