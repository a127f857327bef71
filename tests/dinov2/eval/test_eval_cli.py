"""The evaluation CLIs: the official linear-probe script as a real process, kNN and retrieval mains,
input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """A real process (the official ``python dinov2/run/eval/linear.py`` form); slow to start, used
    once."""
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )


def run_main(main, capsys, *args: str) -> tuple[int, str, str]:
    """A CLI's ``main(argv)`` in this process: ``(exit code, stdout, stderr)``."""
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def model_args(config: Path, weights: Path, output_dir: Path | None = None) -> list[str]:
    args = ["--config-file", str(config), "--pretrained-weights", str(weights)]
    return args if output_dir is None else [*args, "--output-dir", str(output_dir)]


def dataset_args(root: Path) -> list[str]:
    return [
        "--train-dataset",
        f"ImageNet:split=TRAIN:root={root}",
        "--val-dataset",
        f"ImageNet:split=VAL:root={root}",
    ]


def test_official_linear_cli_fast_mode_writes_results(
    pico_config, checkpoint, image_tree, tmp_path
):
    out = tmp_path / "linear"
    proc = run_cli(
        "dinov2/run/eval/linear.py",
        *model_args(pico_config, checkpoint, out),
        *dataset_args(image_tree),
        "--cache-features",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--resize-size",
        "32",
        "--crop-size",
        "32",
        "--num-workers",
        "0",
        "--noise",
        "gauss_25",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results_eval_linear.json").read_text())
    assert (
        results["mode"] == "fast" and len(results["classifiers"]) == 52 and results["n_train"] == 12
    )


def test_knn_cli_writes_results(pico_config, checkpoint, image_tree, tmp_path, capsys):
    from dinov2.run.eval.knn import main

    rc, _, err = run_main(
        main,
        capsys,
        *model_args(pico_config, checkpoint, tmp_path),
        *dataset_args(image_tree),
        "--nb_knn",
        "1",
        "3",
        "--resize-size",
        "32",
        "--crop-size",
        "32",
    )
    assert rc == 0, err[-2000:]
    results = json.loads((tmp_path / "results_eval_knn.json").read_text())
    assert set(results) == {"k=1", "k=3", "best"}


def test_checkpoint_of_another_architecture_is_a_one_line_error(
    pico_config, checkpoint, image_tree, tmp_path, capsys
):
    from dinov2.run.eval.linear import main

    rc, _, err = run_main(
        main,
        capsys,
        *model_args(pico_config, checkpoint, tmp_path),
        *dataset_args(image_tree),
        "--opts",
        "student.patch_size=16",
    )
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and str(checkpoint) in last and "--config-file" in last


def test_dataset_without_index_is_a_one_line_error(pico_config, checkpoint, tmp_path, capsys):
    from dinov2.run.eval.knn import main

    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "a" / "0.png")
    rc, _, err = run_main(
        main,
        capsys,
        *model_args(pico_config, checkpoint),
        *dataset_args(tmp_path),
    )
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "process_metadata.py" in last and str(tmp_path) in last


def test_retrieval_cli_on_the_mini_set_with_a_denoiser(pico_config, checkpoint, tmp_path, capsys):
    from dinov2.eval.retrieval.mini_set import main as build_main
    from dinov2.run.eval.retrieval import main
    from neighbor2neighbor.checkpoint import save_model
    from neighbor2neighbor.unet import UNet

    assert build_main([str(tmp_path), "--size", "32"]) == 0
    save_model(UNet(n_feature=4), tmp_path / "n2n.pth")
    common = [
        *model_args(pico_config, checkpoint),
        "--data-root",
        str(tmp_path),
        "--datasets",
        "mini",
        "--resize-size",
        "32",
        "--crop-size",
        "32",
        "--noise",
        "shot_10",
    ]
    for out_dir, extra in (("noisy", []), ("denoised", ["--denoiser", str(tmp_path / "n2n.pth")])):
        rc, out, err = run_main(
            main, capsys, *common, "--output-dir", str(tmp_path / out_dir), *extra
        )
        assert rc == 0, err[-2000:]
        assert out.strip().splitlines()[-1].startswith("mini: mAP E")
    noisy, denoised = (
        json.loads((tmp_path / d / "results_eval_retrieval.json").read_text())
        for d in ("noisy", "denoised")
    )
    assert {"mAP_easy", "mAP_medium", "mAP_hard", "mP@10_hard"} <= set(noisy["mini"])
    assert denoised["settings"]["denoised"] and not noisy["settings"]["denoised"]
    assert denoised["mini"] != noisy["mini"]  # the denoiser changed what the backbone saw


def test_retrieval_cli_without_gnd_is_a_one_line_error(pico_config, checkpoint, tmp_path, capsys):
    from dinov2.run.eval.retrieval import main

    rc, _, err = run_main(
        main,
        capsys,
        *model_args(pico_config, checkpoint),
        "--data-root",
        str(tmp_path),
        "--datasets",
        "roxford5k",
    )
    assert rc == 2
    last = err.strip().splitlines()[-1]
    assert "gnd_roxford5k.pkl" in last and "jpg/" in last


def test_a_bad_device_is_a_one_line_error_before_anything_is_written(
    pico_config, checkpoint, image_tree, tmp_path, capsys
):
    from dinov2.run.eval.knn import main

    out = tmp_path / "knn"
    rc, _, err = run_main(
        main,
        capsys,
        *model_args(pico_config, checkpoint, out),
        *dataset_args(image_tree),
        "--device",
        "tpu",
    )
    assert rc == 2
    assert err.strip().splitlines() == [err.strip()] and "--device" in err and "'tpu'" in err
    assert not out.exists()
