"""``python -m dinov2.run.pipeline``: the first failing stage stops the run with its exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "configs" / "experiments" / "demo.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop("NOISY_DINOV2_DEBUG", None)


def _pipeline(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dinov2.run.pipeline", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
    )


def test_a_stage_config_error_stops_the_run_with_exit_2_before_any_work(tmp_path):
    out = tmp_path / "out"
    proc = _pipeline(
        "--experiment",
        str(DEMO),
        "noise",
        "n2n",
        f"output_root={out}",
        "noise.sigma_255=-1",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    stage_line, pipeline_line = proc.stderr.splitlines()
    assert stage_line.startswith("error: config key 'noise.sigma_255'")
    assert pipeline_line.startswith("error: stage 'add noise' of ")
    assert "==> [demo] add noise" in proc.stdout and "train Neighbor2Neighbor" not in proc.stdout
    assert not out.exists()


def test_a_missing_experiment_file_is_one_line_and_exit_2(tmp_path):
    proc = _pipeline("--experiment", str(tmp_path / "nope.yaml"), "noise", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: experiment file not found: {tmp_path / 'nope.yaml'}"
    ]
