"""The report: Markdown table from fake results JSONs, real PNG figures, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dinov2.run.report import BARS_NAME, GRID_NAME, TABLE_NAME, collect_metrics, main, write_report


def fake_run(folder, linear=None, knn=None, retrieval=None):
    folder.mkdir(parents=True)
    if linear is not None:
        (folder / "results_eval_linear.json").write_text(
            json.dumps({"top1": linear, "top5": linear + 10})
        )
    if knn is not None:
        (folder / "results_eval_knn.json").write_text(
            json.dumps(
                {"k=10": {"top1": knn, "top5": 99.0}, "k=20": {"top1": knn - 1, "top5": 99.0}}
            )
        )
    if retrieval is not None:
        (folder / "results_eval_retrieval.json").write_text(
            json.dumps(
                {
                    "mini": {"mAP_easy": 90.0, "mAP_medium": retrieval, "mAP_hard": retrieval / 2},
                    "settings": {},
                }
            )
        )
    return folder


def test_table_has_one_row_per_method_and_dash_for_missing_metrics(tmp_path):
    runs = [
        fake_run(tmp_path / "dinov2", linear=61.5, knn=55.25, retrieval=40.0),
        fake_run(tmp_path / "nct", linear=70.125),
    ]
    table = write_report(runs, tmp_path / "report")
    lines = table.splitlines()
    assert (
        lines[0] == "| method | linear top-1 | linear top-5 | kNN top-1 | mini mAP M | mini mAP H |"
    )
    assert lines[2] == "| DINOv2 | 61.50 | 71.50 | 55.25 | 40.00 | 20.00 |"
    assert lines[3] == "| DINOv2 w/ NCT | 70.12 | 80.12 | – | – | – |"
    assert (tmp_path / "report" / TABLE_NAME).read_text() == table
    assert Image.open(tmp_path / "report" / BARS_NAME).format == "PNG"


def test_knn_without_best_entry_uses_the_best_k(tmp_path):
    assert collect_metrics(fake_run(tmp_path / "a", knn=50.0))["kNN top-1"] == 50.0


def test_noise_grid_has_one_row_per_folder(tmp_path):
    folders = []
    for name, value in (("clean", 200), ("noisy", 100), ("denoised", 150)):
        for i in range(3):
            (tmp_path / name / "c").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 30, 3), value, np.uint8)).save(
                tmp_path / name / "c" / f"{i}.png"
            )
        folders.append(tmp_path / name)
    write_report([fake_run(tmp_path / "run", linear=10.0)], tmp_path / "out", grid_folders=folders)
    grid = np.asarray(Image.open(tmp_path / "out" / GRID_NAME).convert("L"))
    # make_grid: 3 rows × 3 tiles of 96 px with 2 px padding → 3·98 + 2 pixels high and wide
    assert grid.shape == (296, 296)
    assert [int(grid[2 + 98 * r + 48, 50]) for r in range(3)] == [200, 100, 150]


def test_cli_prints_the_table_and_reports_bad_json_in_one_line(tmp_path, capsys):
    run = fake_run(tmp_path / "nc", linear=12.0)
    assert main([str(run), "--out", str(tmp_path / "out")]) == 0
    assert "| DINOv2 w/ NC | 12.00 | 22.00 |" in capsys.readouterr().out
    (run / "results_eval_linear.json").write_text("{not json")
    assert main([str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results_eval_linear.json" in err


@pytest.mark.parametrize("argv", [[], ["--out", "x"]])
def test_cli_without_runs_is_an_error(argv, capsys):
    assert main(argv) == 2
    assert "RUN_DIR" in capsys.readouterr().err


def test_noise_grid_matches_jpeg_clean_to_png_noisy_and_takes_one_image_per_class_first(tmp_path):
    # clean ImageNet trees are JPEG, the noisy/denoised copies PNG: same images, other extensions
    for name, ext in (("clean", ".JPEG"), ("noisy", ".png")):
        for c, value in (("a", 40), ("b", 220)):
            (tmp_path / name / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(
                    tmp_path / name / c / f"{i}{ext}"
                )
    write_report(
        [fake_run(tmp_path / "run", linear=10.0)],
        tmp_path / "out",
        grid_folders=[tmp_path / "clean", tmp_path / "noisy"],
    )
    grid = np.asarray(Image.open(tmp_path / "out" / GRID_NAME).convert("L"))
    assert grid.shape == (2 + 98 * 2, 2 + 98 * 6)  # 2 rows (clean, noisy) × 6 common images
    first_row = [int(grid[50, 2 + 98 * k + 48]) for k in range(6)]
    assert [v < 128 for v in first_row] == [True, False] * 3  # classes alternate: a, b, a, b, ...
