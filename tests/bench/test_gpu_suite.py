"""bench/gpu_suite.py: the dry run lists and skips every step with its reason and writes the results
file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import gpu_suite  # noqa: E402


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench/gpu_suite.py", *args], cwd=REPO, capture_output=True, text=True
    )


def _step_rows(text: str) -> dict[str, str]:
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return {row[0].strip("| `"): row[2] for row in rows}


def test_dry_run_lists_every_step_as_skipped_and_writes_the_results_file(tmp_path):
    out = tmp_path / "results.md"
    proc = _run("--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = _step_rows(out.read_text())
    names = [step.name for step in gpu_suite.all_steps()]
    assert list(rows) == names
    assert {
        "cuda_tests",
        "bf16_sdpa_flash",
        "train_vit_small_batched_compile",
        "train_vit_base_per_image",
        "n2n_bf16",
        "linear_probe",
    } <= set(names)
    assert all(status == "skipped: --dry-run" for status in rows.values())
    assert "dry run" in out.read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only skip reason")
def test_without_cuda_every_step_is_skipped_with_the_reason(tmp_path):
    out = tmp_path / "results.md"
    proc = _run("--out", str(out), "--only", "bf16_sdpa_flash", "n2n_bf16")
    assert proc.returncode == 0, proc.stderr
    rows = _step_rows(out.read_text())
    assert (
        rows["bf16_sdpa_flash"]
        == rows["n2n_bf16"]
        == "skipped: no CUDA device (torch.cuda.is_available() is False)"
    )
    assert rows["cuda_tests"] == "skipped: not in --only"


def test_existing_results_are_kept_without_overwrite_and_a_bad_step_is_one_line(tmp_path):
    out = tmp_path / "results.md"
    out.write_text("mine\n")
    proc = _run("--dry-run", "--out", str(out))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and out.read_text() == "mine\n"
    proc = _run("--dry-run", "--out", str(out), "--overwrite", "--only", "train_vit_huge")
    assert proc.returncode == 2 and "unknown step 'train_vit_huge'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_training_step_figures_are_measured_on_a_tiny_model(tmp_path):
    # The GPU step's code path on the CPU: tiny ViT, tiny heads, 32/16-px crops of 500x375 JPEGs.
    heads = [
        f"{h}.{k}={v}"
        for h in ("dino", "ibot")
        for k, v in (
            ("head_n_prototypes", 64),
            ("head_bottleneck_dim", 16),
            ("head_hidden_dim", 32),
        )
    ]
    figures = gpu_suite.train_step_figures(
        "vit_pico",
        "batched",
        False,
        tmp_path,
        batch_size=2,
        device=torch.device("cpu"),
        patch_size=8,
        global_size=32,
        local_size=16,
        warmup=1,
        steps=1,
        n_images=4,
        extra_opts=[*heads, "train.num_workers=0"],
    )
    assert figures["images/s"] > 0 and figures["GFLOP/step"] > 0
    assert figures["model s/step"] > 0 and figures["data s/step"] > 0
