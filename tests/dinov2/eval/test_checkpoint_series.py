"""Evaluating every exported checkpoint (eval.checkpoints: all) and reporting final and best over
them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dinov2.eval.checkpoint_series import CheckpointResult, checkpoint_series, final_and_best
from dinov2.run.eval.checkpoints import method_eval_args
from dinov2.run.report import collect_metrics, write_report
from utils.config import DEMO_EXPERIMENT, ConfigError, load_experiment


def _export(run_dir: Path, iteration: int) -> Path:
    path = run_dir / "eval" / f"training_{iteration}" / "teacher_checkpoint.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return path


def test_all_evaluates_every_export_in_its_own_folder_and_final_only_the_newest(
    tmp_path: Path,
) -> None:
    overrides = [f"output_root={tmp_path}"]
    cfg = load_experiment(DEMO_EXPERIMENT, [*overrides, "eval.checkpoints=all"])
    run_dir = Path(cfg.pretrain.runs_dir) / "dinov2"
    exports = {it: _export(run_dir, it) for it in (49, 99, 149)}
    entries = method_eval_args(cfg, ["dinov2"])
    eval_dir = Path(cfg.run_dir) / "eval" / "dinov2"
    assert [(e["pretrained_weights"], e["eval_dir"]) for e in entries] == [
        (str(exports[it]), eval_dir / f"training_{it}") for it in (49, 99, 149)
    ]
    final = method_eval_args(load_experiment(DEMO_EXPERIMENT, overrides), ["dinov2"])  # the default
    assert [(e["pretrained_weights"], e["eval_dir"]) for e in final] == [
        (str(exports[149]), eval_dir)
    ]
    with pytest.raises(ConfigError, match="eval.checkpoints"):
        method_eval_args(
            load_experiment(DEMO_EXPERIMENT, [*overrides, "eval.checkpoints=best"]), ["dinov2"]
        )


def _result(folder: Path, top1: float, config_file: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "results_eval_linear.json").write_text(json.dumps({"top1": top1, "top5": top1 + 10}))
    record = {"settings": {"config_file": str(config_file)}, "digest": "0"}
    (folder / ".settings.linear.json").write_text(json.dumps(record))


def test_report_shows_final_and_best_with_their_checkpoint_names_and_a_plot_vs_epoch(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "run" / "config.yaml"
    config_file.parent.mkdir()
    config_file.write_text("train:\n  OFFICIAL_EPOCH_LENGTH: 25\n")
    series_dir, final_dir = tmp_path / "eval" / "nc", tmp_path / "eval" / "dinov2"
    for iteration, top1 in (
        (24, 10.0),
        (49, 30.0),
        (74, 25.0),
    ):  # epochs 1, 2, 3: the best is not the last
        _result(series_dir / f"training_{iteration}", top1, config_file)
    final_dir.mkdir(parents=True)  # a method evaluated on its final export only
    (final_dir / "results_eval_linear.json").write_text(json.dumps({"top1": 20.0, "top5": 40.0}))
    table = write_report([final_dir, series_dir], tmp_path / "report")
    lines = table.splitlines()
    assert (
        "| DINOv2 | 20.00 | 40.00 |" in lines and "| DINOv2 w/ NC | 25.00 | 35.00 |" in lines
    )  # rows: final
    assert "| DINOv2 w/ NC | 25.00 | training_74 | 30.00 | training_49 | 3 |" in lines
    assert not any(
        line.startswith("| DINOv2 | 20.00 | training") for line in lines
    )  # no series, no final/best row
    assert "final = the last export; best = the highest" in table
    # exports are named after their last iteration: training_24 is the end of epoch 1 of 25
    # iterations
    assert [r.epoch for r in checkpoint_series(series_dir, collect_metrics)] == [1.0, 2.0, 3.0]
    with Image.open(tmp_path / "report" / "accuracy_vs_epoch.png") as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_best_is_the_highest_value_and_the_earliest_export_on_a_tie() -> None:
    series = [
        CheckpointResult(f"training_{i}", i, None, {"linear top-1": v})
        for i, v in ((9, 5.0), (19, 7.0), (29, 7.0))
    ]
    assert final_and_best(series) == {
        "final": ("training_29", 7.0),
        "best": ("training_19", 7.0),
        "n": 3,
    }
    assert final_and_best([CheckpointResult("training_9", 9, None, {"kNN top-1": 1.0})]) is None
