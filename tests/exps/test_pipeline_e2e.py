"""The whole pipeline through exps/demo.sh on a tiny generated dataset: every stage, four methods,
one table.

Real processes (one per stage, as users run them), real files; a second run must skip every stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_experiment import write_two_class_tree

REPO = Path(__file__).resolve().parents[2]

TINY = """\
name: tiny
output_root: {out}
data: {{name: toy, clean_root: {clean}}}
noise: {{family: gauss, sigma_255: 50}}
pretrain:
  config_file: {repo}/dinov2/configs/train/vit_pico_cpu.yaml
  overrides:
    train: {{batch_size_per_gpu: 4, OFFICIAL_EPOCH_LENGTH: 2, checkpoint_period_iterations: 2}}
    evaluation: {{eval_period_iterations: 0}}
  epochs: 2
  switch_epoch: 1
  curriculum_epochs: 1
n2n: {{n_feature: 8, crop_size: 64, batch_size: 2, n_epoch: 1, n_samples_per_epoch: 4,
       val_photos: [coffee], val_size: 64, workers: 0}}
eval: {{resize_size: 32, crop_size: 32, batch_size: 8, num_workers: 0,
        linear: {{epochs: 1, batch_size: 4}}, knn: {{nb_knn: [1, 3]}},
        retrieval: {{mini_size: 32}}}}
"""


def _table(stdout: str) -> str:
    """The main results table of the last report printed (the first table after its caption)."""
    lines = stdout[stdout.rindex("Noise `") :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "".join(line + "\n" for line in lines[start:end])


def _demo(experiment: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["sh", "exps/demo.sh", str(experiment)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_demo_script_runs_every_stage_prints_four_methods_and_skips_finished_stages(tmp_path):
    clean, out = tmp_path / "clean", tmp_path / "out"
    write_two_class_tree(clean)
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(TINY.format(out=out, clean=clean, repo=REPO))

    first = _demo(experiment)
    assert first.returncode == 0, first.stderr[-3000:]
    table = _table(first.stdout)
    rows = [
        line for line in table.splitlines()[2:] if line.startswith("| ")
    ]  # after the header and rule
    assert [r.split("|")[1].strip() for r in rows] == [
        "random init (untrained)",
        "random init, denoised data",
        "raw pixels",
        "raw pixels, denoised data",
        "DINOv2",
        "N2N + DINOv2",
        "DINOv2 w/ NC",
        "DINOv2 w/ NCT",
    ]  # reference rows first
    header = [c.strip() for c in table.splitlines()[0].split("|")]
    assert "gain kNN top-1" in header and "gain linear top-1" in header
    gain = header.index("gain kNN top-1")
    cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")] for r in rows}
    knn = header.index("kNN top-1")
    for method, ref in (
        ("DINOv2", "random init (untrained)"),
        ("N2N + DINOv2", "random init, denoised data"),
    ):
        assert float(cells[method][gain]) == pytest.approx(
            float(cells[method][knn]) - float(cells[ref][knn]), abs=0.011
        )
    assert cells["random init (untrained)"][gain] == "–"
    report = out / "runs" / "tiny" / "gauss_50" / "report"
    written = (report / "results.md").read_text()
    assert table in written and written.startswith(
        "Noise `gauss_50` on `toy`"
    )  # the report names both
    assert (
        "Noise-level sweep" in written
        and "| DINOv2 w/ NCT |" in written.split("Noise-level sweep")[1]
    )
    for figure in ("accuracy.png", "noise_grid.png", "noise_sweep.png"):
        assert (report / figure).stat().st_size > 0
    noisy, denoised = out / "data" / "toy_gauss_50", out / "data" / "toy_gauss_50_n2n"
    assert (
        len(list((noisy / "val").rglob("*.png")))
        == len(list((denoised / "val").rglob("*.png")))
        == 6
    )
    assert not (clean / "extra").exists()  # the user's clean tree is never written

    runs = out / "runs" / "tiny" / "gauss_50" / "pretrain"
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("*.pth")}
    second = _demo(experiment)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("finished run") == 9  # every pretraining call of the three scripts
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*.pth")} == stamps
    assert _table(second.stdout) == table
