"""dinov2/run/submit.py with submitit's local executor: a preempted training job requeues and resumes."""

from __future__ import annotations

import json
import time

import pytest
from train_helpers import TINY_CONFIG

from dinov2.run.submit import submit
from dinov2.train.checkpointing import list_checkpoints
from dinov2.train.train import METRICS_FILE


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


def test_preempted_local_job_is_requeued_and_resumes_from_its_last_checkpoint(tmp_path, image_root):
    out, jobs = tmp_path / "run", tmp_path / "jobs"
    job = submit([
        "train", "--cluster", "local", "--ngpus", "0", "--timeout", "10", "--job-dir", str(jobs),
        "--config-file", str(TINY_CONFIG), "--output-dir", str(out),
        f"train.dataset_path=ImageNet:split=TRAIN:root={image_root}", "train.batch_size_per_gpu=4",
        "optim.epochs=40", "train.checkpoint_period_iterations=5",
    ])  # fmt: skip
    _wait_for(lambda: list_checkpoints(out), 120, "the first checkpoint")
    job._interrupt()  # what slurm's pre-timeout / preemption signal does
    assert job.result() == 0  # waits for the requeued run

    log = "".join(p.read_text() for p in jobs.rglob("*_log.err"))
    assert "requeueing train" in log
    assert "resumed from" in log and "at iteration" in log
    iterations = [json.loads(line)["iteration"] for line in (out / METRICS_FILE).read_text().splitlines()]
    assert iterations == list(range(400))  # resumed runs rewrite the lines after their checkpoint
    assert (out / "eval" / "training_399" / "teacher_checkpoint.pth").is_file()


def test_failing_stage_fails_the_job(tmp_path):
    job = submit(["train", "--cluster", "local", "--ngpus", "0", "--job-dir", str(tmp_path / "jobs"),
                  "--config-file", str(tmp_path / "missing.yaml"), "--output-dir", str(tmp_path / "run")])
    with pytest.raises(Exception, match="exited with status 2"):
        job.result()
