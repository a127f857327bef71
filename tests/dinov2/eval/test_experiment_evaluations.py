"""Evaluations driven by an experiment YAML: paths derived from it, finished stages skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def experiment(tmp_path, pico_config, checkpoint, image_tree) -> Path:
    """An experiment whose DINOv2 run has one teacher checkpoint and whose noisy root is indexed."""
    out = tmp_path / "outputs"
    shutil.copytree(image_tree, out / "data" / "toy_gauss_100")
    run = out / "runs" / "t" / "gauss_100" / "pretrain" / "dinov2"
    (run / "eval" / "training_9").mkdir(parents=True)
    shutil.copy(checkpoint, run / "eval" / "training_9" / "teacher_checkpoint.pth")
    shutil.copy(pico_config, run / "config.yaml")
    exp = tmp_path / "t.yaml"
    exp.write_text(
        f"name: t\noutput_root: {out}\ndata: {{name: toy, clean_root: {tmp_path / 'clean'}}}\n"
        "eval: {resize_size: 32, crop_size: 32, num_workers: 0, batch_size: 8,\n"
        "       linear: {epochs: 1, batch_size: 4}, knn: {nb_knn: [1, 3]},\n"
        "       retrieval: {mini_size: 32}}\n"
    )
    return exp


def test_experiment_runs_every_evaluation_of_the_method_with_a_checkpoint(experiment, capsys):
    from dinov2.run.eval.knn import main as knn_main
    from dinov2.run.eval.linear import main as linear_main
    from dinov2.run.eval.retrieval import main as retrieval_main
    from dinov2.run.report import main as report_main

    eval_dir = experiment.parent / "outputs" / "runs" / "t" / "gauss_100" / "eval" / "dinov2"
    for main in (linear_main, knn_main, retrieval_main):
        assert main(["--experiment", str(experiment)]) == 0, capsys.readouterr().err[-1000:]
    linear = json.loads((eval_dir / "results_eval_linear.json").read_text())
    assert linear["mode"] == "fast" and linear["n_train"] == 12
    assert set(json.loads((eval_dir / "results_eval_knn.json").read_text())) == {
        "k=1",
        "k=3",
        "best",
    }
    retrieval = json.loads((eval_dir / "results_eval_retrieval.json").read_text())
    assert retrieval["settings"]["noise"] == "gauss_100" and not retrieval["settings"]["denoised"]
    # a second run skips the finished evaluation and keeps its file
    before = (eval_dir / "results_eval_linear.json").stat().st_mtime_ns
    capsys.readouterr()
    assert linear_main(["--experiment", str(experiment)]) == 0
    assert (eval_dir / "results_eval_linear.json").stat().st_mtime_ns == before
    assert report_main(["--experiment", str(experiment)]) == 0
    assert "| DINOv2 |" in capsys.readouterr().out


def test_experiment_naming_a_method_without_checkpoint_is_a_one_line_error(experiment, capsys):
    from dinov2.run.eval.linear import main

    assert main(["--experiment", str(experiment), "--method", "nct"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nct" in err and "teacher_checkpoint.pth" in err
