"""Multi-seed aggregation: mean and sample std per method, the table and the error-bar plot."""

from __future__ import annotations

import pytest

from dinov2.run.multiseed import STEPS, aggregate, error_bars, markdown, seed_overrides


def test_mean_and_sample_std_over_seeds_per_method_and_metric():
    per_seed = {
        0: {
            "dinov2": {"linear top-1": 50.0, "kNN top-1": 40.0},
            "random_init": {"kNN top-1": 10.0},
        },
        1: {
            "dinov2": {"linear top-1": 54.0, "kNN top-1": 44.0},
            "random_init": {"kNN top-1": 12.0},
        },
        2: {"dinov2": {"linear top-1": 58.0, "kNN top-1": 39.0}},
    }
    summary = aggregate(per_seed)
    assert summary["dinov2"]["linear top-1"] == pytest.approx(
        (54.0, 4.0, 3)
    )  # std of 50, 54, 58 (n - 1)
    mean, std, n = summary["dinov2"]["kNN top-1"]
    assert (mean, n) == (pytest.approx(41.0), 3) and std == pytest.approx(2.6457513)
    assert summary["random_init"]["kNN top-1"] == pytest.approx((11.0, 1.4142136, 2))
    assert "linear top-1" not in summary["random_init"]
    assert list(summary) == ["random_init", "dinov2"]  # reference rows first, as in every table


def test_table_and_plot(tmp_path):
    summary = aggregate(
        {0: {"nc": {"linear top-1": 61.0, "kNN top-1": 55.5}}, 1: {"nc": {"linear top-1": 63.0}}}
    )
    text = markdown(summary, [0, 1], "caption")
    assert "| DINOv2 w/ NC | 62.00 ± 1.41 | 55.50 ± 0.00 |" in text and text.startswith("caption")
    error_bars(summary, tmp_path / "bars.png")
    assert (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"


def test_each_seed_is_its_own_experiment_and_runs_every_method_with_its_references():
    assert seed_overrides("demo", 2, ["eval.batch_size=8"]) == [
        "eval.batch_size=8",
        "seed=2",
        "name=demo_seed2",
        "data.denoised_root=${data.noisy_root}_n2n_seed2",
    ]
    assert {
        "pretrain:nct",
        "evaluate:nct:linear,knn",
        "evaluate:random_init:linear,knn",
        "reference",
    } <= set(STEPS)
