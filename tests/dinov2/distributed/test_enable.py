"""``dinov2.distributed.enable``: single process without launcher variables, torchrun-style
variables from slurm."""

from __future__ import annotations

import pytest

from dinov2 import distributed


def test_single_process_without_launcher_variables(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(k, raising=False)
    distributed.enable()
    assert not distributed.is_enabled()
    assert (
        distributed.get_global_rank(),
        distributed.get_global_size(),
        distributed.is_main_process(),
    ) == (0, 1, True)


def test_slurm_variables_become_torchrun_variables(monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "node7")
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.delenv("MASTER_PORT", raising=False)
    env = distributed._env_from_slurm()
    assert env["RANK"] == "5" and env["WORLD_SIZE"] == "8" and env["LOCAL_RANK"] == "1"
    assert env["LOCAL_WORLD_SIZE"] == "4" and env["MASTER_ADDR"] == "node7"
    assert 20000 <= int(env["MASTER_PORT"]) < 40000
    assert env == distributed._env_from_slurm()  # every task derives the same port


@pytest.mark.parametrize("n_tasks", ["1", None])
def test_no_slurm_env_for_single_task_steps(monkeypatch, n_tasks):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    if n_tasks:
        monkeypatch.setenv("SLURM_NTASKS", n_tasks)
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert distributed._env_from_slurm() is None
