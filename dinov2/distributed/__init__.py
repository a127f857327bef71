"""``torch.distributed`` set-up from torchrun or slurm variables (official function names).

torchrun (and :mod:`dinov2.run.submit`) export ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``; a bare ``srun`` exports ``SLURM_PROCID``, ``SLURM_NTASKS``,
``SLURM_LOCALID`` and ``SLURM_JOB_NODELIST``. Without either, training runs as one process and
:func:`enable` does nothing. The backend is nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import logging
import os
import subprocess
import zlib

import torch
import torch.distributed as dist

logger = logging.getLogger("dinov2")

_LOCAL_RANK = 0
_LOCAL_SIZE = 1


def is_enabled() -> bool:
    """True once a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_global_size() -> int:
    return dist.get_world_size() if is_enabled() else 1


def get_global_rank() -> int:
    return dist.get_rank() if is_enabled() else 0


def get_local_rank() -> int:
    return _LOCAL_RANK if is_enabled() else 0


def get_local_size() -> int:
    return _LOCAL_SIZE if is_enabled() else 1


def is_main_process() -> bool:
    return get_global_rank() == 0


def _first_slurm_host(nodelist: str) -> str:
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        )
        return out.stdout.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return nodelist.split(",")[0].split("[")[0]


def _env_from_slurm() -> dict[str, str] | None:
    """torchrun-style variables derived from slurm's, or None outside a multi-task slurm step."""
    if int(os.environ.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in os.environ:
        return None
    n_tasks = int(os.environ["SLURM_NTASKS"])
    n_nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", os.environ.get("SLURM_NNODES", "1")))
    job_id = os.environ.get("SLURM_JOB_ID", "0")
    return {
        "RANK": os.environ["SLURM_PROCID"],
        "WORLD_SIZE": str(n_tasks),
        "LOCAL_RANK": os.environ.get("SLURM_LOCALID", "0"),
        "LOCAL_WORLD_SIZE": str(n_tasks // max(n_nodes, 1)),
        "MASTER_ADDR": _first_slurm_host(os.environ.get("SLURM_JOB_NODELIST", "127.0.0.1")),
        # A port derived from the job id: every task of the job computes the same one.
        "MASTER_PORT": os.environ.get(
            "MASTER_PORT", str(20000 + zlib.crc32(job_id.encode()) % 20000)
        ),
    }


def enable(
    *,
    set_cuda_current_device: bool = True,
    overwrite: bool = False,
    allow_nccl_timeout: bool = False,
) -> None:
    """Initialise the default process group if this process was launched as one of several.

    Args:
        set_cuda_current_device: bind this process to GPU ``LOCAL_RANK`` (CUDA only).
        overwrite: let slurm variables replace torchrun variables already in the environment.
        allow_nccl_timeout: accepted for the official signature (NCCL async error handling is on
            by default).
    """
    global _LOCAL_RANK, _LOCAL_SIZE
    if is_enabled():
        return
    has_torchrun = all(
        k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    )
    slurm = _env_from_slurm()
    if slurm is not None and (overwrite or not has_torchrun):
        os.environ.update(slurm)
        has_torchrun = True
    if not has_torchrun or int(os.environ["WORLD_SIZE"]) <= 1:
        logger.info("torch.distributed not enabled: single process")
        return
    _LOCAL_RANK = int(os.environ.get("LOCAL_RANK", "0"))
    _LOCAL_SIZE = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    use_cuda = torch.cuda.is_available()
    if use_cuda and set_cuda_current_device:
        torch.cuda.set_device(_LOCAL_RANK)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    logger.info(
        "torch.distributed enabled: rank %d of %d (%s)",
        dist.get_rank(),
        dist.get_world_size(),
        backend,
    )
