"""The linear-probe protocol: 52 heads and their lrs, selection on validation, both modes end to
end."""

from __future__ import annotations

import json

import pytest
import torch

from dinov2.eval.linear import RESULTS_NAME, probe_cached_features, run_linear_probe
from dinov2.eval.linear_heads import (
    LEARNING_RATES,
    classifier_name,
    create_linear_input,
    make_optimizer,
    setup_linear_classifiers,
)


def test_52_heads_get_scaled_lrs_inputs_and_sgd_settings():
    classifiers, groups = setup_linear_classifiers(
        8, (1, 4), LEARNING_RATES, batch_size=512, num_classes=3
    )
    assert len(classifiers) == 52 == len(groups)
    expected = {}
    for n in (1, 4):
        for avgpool in (False, True):
            for lr in LEARNING_RATES:
                expected[classifier_name(n, avgpool, 2 * lr)] = (2 * lr, 8 * (n + avgpool))
    for group in groups:
        lr, in_dim = expected[group["name"]]
        assert group["lr"] == pytest.approx(lr)  # base lr × 512 / 256
        assert classifiers.classifiers_dict[group["name"]].linear.in_features == in_dim
    assert set(expected) == set(classifiers.classifiers_dict)
    optimizer, scheduler = make_optimizer(groups, max_iter=10)
    assert all(g["momentum"] == 0.9 and g["weight_decay"] == 0 for g in optimizer.param_groups)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    first = optimizer.param_groups[0]
    assert first["lr"] == pytest.approx(first["initial_lr"] * 0.5)  # cosine: half at half-way
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_linear_input_concatenates_last_blocks_then_avgpool():
    cls = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    avg = torch.full((2, 3), -1.0)
    assert torch.equal(create_linear_input(cls, avg, 1, False), cls[:, 3])
    x = create_linear_input(cls, avg, 4, True)
    assert (
        x.shape == (2, 15)
        and torch.equal(x[:, :12], cls.flatten(1))
        and torch.equal(x[:, 12:], avg)
    )


def separable(n: int, seed: int, n_classes: int = 4, dim: int = 8):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    centres = torch.eye(n_classes, dim) * 3.0
    cls = centres[labels].unsqueeze(1).repeat(1, 4, 1) + 0.3 * torch.randn(n, 4, dim, generator=g)
    return cls, torch.randn(n, dim, generator=g), labels


def test_probe_reaches_99_percent_on_linearly_separable_features():
    per_head, best = probe_cached_features(
        separable(256, 0), separable(200, 1), epochs=4, batch_size=64
    )
    assert per_head[best]["top1"] >= 99.0


def test_best_head_is_chosen_on_validation():
    # One tiny and one usable lr: the best head must be a usable-lr head, and the argmax of val
    # top-1.
    per_head, best = probe_cached_features(
        separable(200, 0), separable(100, 1), epochs=3, batch_size=64, learning_rates=(1e-5, 0.1)
    )
    assert len(per_head) == 8
    assert per_head[best]["top1"] == max(v["top1"] for v in per_head.values())
    assert best.endswith(classifier_name(1, False, 0.1 * 64 / 256).rsplit("_lr_", 1)[1])
    assert min(v["top1"] for k, v in per_head.items() if "0_00000" in k) < per_head[best]["top1"]


@pytest.mark.parametrize("fast", [True, False])
def test_run_linear_probe_writes_results_in_both_modes(tiny_vit, squares, tmp_path, fast):
    train, val = squares
    results = run_linear_probe(
        tiny_vit,
        train,
        val,
        fast=fast,
        epochs=2,
        batch_size=8,
        output_dir=tmp_path,
        learning_rates=(1e-3, 0.1),
        save_checkpoint_frequency=1,
        eval_period_iterations=2,
    )
    written = json.loads((tmp_path / RESULTS_NAME).read_text())
    assert written["top1"] == results["top1"] and written["mode"] == (
        "fast" if fast else "protocol"
    )
    assert len(written["classifiers"]) == 8 and 0 <= written["top1"] <= written["top5"] <= 100
    metrics = [
        json.loads(line) for line in (tmp_path / "metrics_linear.jsonl").read_text().splitlines()
    ]
    assert any("val_top1" in m for m in metrics) and any("loss" in m for m in metrics)
    assert (tmp_path / "model_linear.pth").is_file()


def _heads(path):
    return torch.load(path / "model_linear.pth", weights_only=True)["classifiers"]


def test_protocol_mode_resumes_from_its_checkpoint(tiny_vit, squares, tmp_path):
    train, val = squares
    kw = dict(
        fast=False, batch_size=8, learning_rates=(0.1,), save_checkpoint_frequency=1, epochs=2
    )
    run_linear_probe(tiny_vit, train, val, output_dir=tmp_path, **kw)
    first = _heads(tmp_path)
    # Both epochs are in the checkpoint: a second call trains nothing, so even with the training
    # labels swapped the heads stay those of the first run; a fresh run on those labels differs.
    train.labels = 1 - train.labels
    run_linear_probe(tiny_vit, train, val, output_dir=tmp_path, **kw)
    run_linear_probe(tiny_vit, train, val, output_dir=tmp_path / "fresh", **kw)
    again, fresh = _heads(tmp_path), _heads(tmp_path / "fresh")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], fresh[k]) for k in first)


def test_small_batches_keep_52_distinct_head_names():
    classifiers, groups = setup_linear_classifiers(
        4, (1, 4), LEARNING_RATES, batch_size=4, num_classes=2
    )
    assert len(classifiers) == 52 and len({g["name"] for g in groups}) == 52


def test_selection_uses_validation_accuracy_not_training_fit():
    # Training: class signal in both the CLS tokens and the average patch token, so every head fits
    # it. Validation: the CLS tokens are pure noise, only heads that also see the avgpool token can
    # be right.
    g = torch.Generator().manual_seed(3)
    train_cls, train_avg, train_y = separable(256, 0)
    train_avg = torch.eye(4, 8)[train_y] * 3.0 + 0.3 * torch.randn(256, 8, generator=g)
    val_y = torch.arange(200) % 4
    val = (
        torch.randn(200, 4, 8, generator=g),
        torch.eye(4, 8)[val_y] * 3.0 + 0.3 * torch.randn(200, 8, generator=g),
        val_y,
    )
    per_head, best = probe_cached_features(
        (train_cls, train_avg, train_y), val, epochs=4, batch_size=64, learning_rates=(0.1,)
    )
    assert "avgpool_True" in best
    assert (
        per_head[best]["top1"]
        > max(v["top1"] for k, v in per_head.items() if "avgpool_False" in k) + 20
    )
