"""dinov2/run/submit.py with submitit's local executor: a preempted training job requeues and
resumes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from submitit.local.local import LocalJobEnvironment
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


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc: the local executor's task processes)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_preempted_local_job_is_requeued_and_resumes_from_its_last_checkpoint(tmp_path, image_root):
    out, jobs = tmp_path / "run", tmp_path / "jobs"
    job = submit(
        [
            "train",
            "--cluster",
            "local",
            "--ngpus",
            "0",
            "--timeout",
            "10",
            "--job-dir",
            str(jobs),
            "--config-file",
            str(TINY_CONFIG),
            "--output-dir",
            str(out),
            f"train.dataset_path=ImageNet:split=TRAIN:root={image_root}",
            "train.batch_size_per_gpu=4",
            "optim.epochs=15",
            "train.checkpoint_period_iterations=5",
        ]
    )
    _wait_for(lambda: list_checkpoints(out), 120, "the first checkpoint")
    # What slurm does before a time-out or a preemption: signal the task. submitit calls our
    # checkpoint(), the task exits with the requeue code and the local controller starts it again.
    tasks = _children(job._process.pid)
    assert len(tasks) == 1
    os.kill(tasks[0], LocalJobEnvironment._usr_sig())
    assert job.result() == 0  # waits for the requeued run

    log = "".join(p.read_text() for p in jobs.rglob("*_log.err"))
    assert "requeueing train" in log
    assert "resumed from" in log and "at iteration" in log
    iterations = [
        json.loads(line)["iteration"] for line in (out / METRICS_FILE).read_text().splitlines()
    ]
    assert iterations == list(range(150))  # resumed runs rewrite the lines after their checkpoint
    assert (out / "eval" / "training_149" / "teacher_checkpoint.pth").is_file()


def test_failing_stage_fails_the_job(tmp_path):
    job = submit(
        [
            "train",
            "--cluster",
            "local",
            "--ngpus",
            "0",
            "--job-dir",
            str(tmp_path / "jobs"),
            "--config-file",
            str(tmp_path / "missing.yaml"),
            "--output-dir",
            str(tmp_path / "run"),
        ]
    )
    with pytest.raises(Exception, match="exited with status 2"):
        job.result()
