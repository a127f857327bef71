"""Collapse diagnostics: teacher entropies on hand-made targets, the warning, and the per-iteration
metrics."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from train_helpers import make_cfg

from dinov2.train.collapse import CollapseMonitor, teacher_diagnostics
from dinov2.train.train import METRICS_FILE, build_meta_arch, do_train


def test_uniform_targets_have_maximal_per_crop_and_marginal_entropy():
    d = teacher_diagnostics(torch.full((2, 5, 16), 1 / 16))
    assert d["teacher_entropy"].item() == pytest.approx(math.log(16), rel=1e-6)
    assert d["teacher_marginal_entropy"].item() == pytest.approx(math.log(16), rel=1e-6)


def test_one_prototype_for_every_crop_has_zero_entropies():
    targets = torch.zeros(8, 16)
    targets[:, 3] = 1.0
    d = teacher_diagnostics(targets)
    assert d["teacher_entropy"].item() == pytest.approx(0.0, abs=1e-6)
    assert d["teacher_marginal_entropy"].item() == pytest.approx(0.0, abs=1e-6)


def test_distinct_sharp_targets_have_zero_per_crop_and_log_n_marginal_entropy():
    targets = torch.eye(16)[:8]  # 8 crops, each sure of its own prototype: the healthy case
    d = teacher_diagnostics(targets)
    assert d["teacher_entropy"].item() == pytest.approx(0.0, abs=1e-6)
    assert d["teacher_marginal_entropy"].item() == pytest.approx(math.log(8), rel=1e-6)


def _uniform(log_k: float) -> dict[str, float]:
    return {"dino_local_crops_loss": log_k * 2 / 3, "dino_global_crops_loss": log_k / 3}


def test_monitor_warns_once_after_patience_iterations_at_log_k(caplog):
    monitor = CollapseMonitor(n_prototypes=128, patience=3)
    uniform = _uniform(math.log(128))
    with caplog.at_level(logging.WARNING, logger="dinov2"):
        flags = [monitor.update(uniform, i) for i in range(5)]
    assert flags == [False, False, True, True, True]
    warnings = [r for r in caplog.records if "uniform collapse" in r.message]
    assert len(warnings) == 1 and "iteration 2" in warnings[0].message


def test_monitor_streak_restarts_when_targets_are_informative_again():
    monitor = CollapseMonitor(n_prototypes=128, patience=2)
    uniform, learning = _uniform(math.log(128)), _uniform(0.5 * math.log(128))
    flags = [monitor.update(m, i) for i, m in enumerate([uniform, learning, uniform, uniform])]
    assert flags == [False, False, False, True]


def test_monitor_uses_teacher_entropy_and_can_be_disabled():
    high_entropy = {"teacher_entropy": 0.995 * math.log(64)}
    assert CollapseMonitor(64, patience=1).update(high_entropy, 0)
    assert not CollapseMonitor(64, patience=1).update({"teacher_entropy": 0.5 * math.log(64)}, 0)
    assert not CollapseMonitor(64, patience=0).update(high_entropy, 0)


def _train(cfg) -> None:
    torch.manual_seed(cfg.train.seed)
    do_train(cfg, build_meta_arch(cfg, torch.device("cpu")))


def test_metrics_hold_finite_collapse_diagnostics_once_per_iteration_also_after_resume(
    tmp_path, image_root
):
    common = (
        "optim.epochs=1",
        "train.checkpoint_period_iterations=3",
        "train.collapse_warning_epochs=1",
    )
    _train(make_cfg(tmp_path, image_root, *common, "train.stop_at_iteration=3"))
    _train(make_cfg(tmp_path, image_root, *common, "train.stop_at_iteration=6"))
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [r["iteration"] for r in records] == list(range(6))
    log_k = math.log(128)  # vit_pico_cpu.yaml: 128 prototypes
    for r in records:
        for key in ("teacher_entropy", "teacher_marginal_entropy", "dino_center_norm"):
            assert math.isfinite(r[key]), (key, r)
        assert 0.0 <= r["teacher_entropy"] <= r["teacher_marginal_entropy"] + 1e-4 <= log_k + 1e-3
        assert isinstance(r["collapsed"], bool)
