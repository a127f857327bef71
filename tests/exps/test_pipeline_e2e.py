"""The whole pipeline through exps/demo.sh on a tiny generated dataset: every stage, four methods, one table.

Real processes (one per stage, as users run them), real files; a second run must skip every stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

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
n2n: {{n_feature: 8, crop_size: 64, batch_size: 2, n_epoch: 1, n_samples_per_epoch: 4, val_photos: [coffee],
       val_size: 64, workers: 0}}
eval: {{resize_size: 32, crop_size: 32, batch_size: 8, num_workers: 0,
        linear: {{epochs: 1, batch_size: 4}}, knn: {{nb_knn: [1, 3]}}, retrieval: {{mini_size: 32}}}}
"""


def _tree(root: Path) -> None:
    """Two classes of 32x32 RGB images (bright squares vs dark discs), 6 train and 3 val each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, n in (("train", 6), ("val", 3)):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                cy, cx = rng.integers(10, 22, 2)
                shape = (abs(yy - cy) < 7) & (abs(xx - cx) < 7) if c == 0 else (yy - cy) ** 2 + (xx - cx) ** 2 < 49
                img = np.where(shape[..., None], 220 if c == 0 else 120, 30).astype(np.uint8).repeat(3, axis=2)
                Image.fromarray(img).save(folder / f"{i}.png")


def _table(stdout: str) -> str:
    """The last Markdown table printed."""
    lines = stdout[stdout.rindex("| method"):].splitlines()
    return "".join(line + "\n" for line in lines if line.startswith("|"))


def _demo(experiment: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["sh", "exps/demo.sh", str(experiment)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


def test_demo_script_runs_every_stage_prints_four_methods_and_skips_finished_stages(tmp_path):
    clean, out = tmp_path / "clean", tmp_path / "out"
    _tree(clean)
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(TINY.format(out=out, clean=clean, repo=REPO))

    first = _demo(experiment)
    assert first.returncode == 0, first.stderr[-3000:]
    table = _table(first.stdout)
    rows = [line for line in table.splitlines()[2:] if line.startswith("| ")]  # after the header and rule
    assert [r.split("|")[1].strip() for r in rows] == ["DINOv2", "N2N + DINOv2", "DINOv2 w/ NC", "DINOv2 w/ NCT"]
    report = out / "runs" / "tiny" / "gauss_50" / "report"
    written = (report / "results.md").read_text()
    assert written.endswith(table) and written.startswith("Noise `gauss_50` on `toy`")  # the report names both
    assert (report / "accuracy.png").stat().st_size > 0 and (report / "noise_grid.png").stat().st_size > 0
    noisy, denoised = out / "data" / "toy_gauss_50", out / "data" / "toy_gauss_50_n2n"
    assert len(list((noisy / "val").rglob("*.png"))) == len(list((denoised / "val").rglob("*.png"))) == 6
    assert not (clean / "extra").exists()  # the user's clean tree is never written

    runs = out / "runs" / "tiny" / "gauss_50" / "pretrain"
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("*.pth")}
    second = _demo(experiment)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("finished run") == 9  # every pretraining call of the three scripts
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*.pth")} == stamps
    assert _table(second.stdout) == table
