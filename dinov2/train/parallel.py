"""Data parallelism of the meta-architecture: DDP (default, tested on CPU with gloo) or FSDP2.

DDP wraps each student sub-network (``backbone``, ``dino_head``, ``ibot_head``) so that its
gradients are averaged over ranks during ``backward``; the wrappers live outside the module tree, so
checkpoint keys stay the official ones. The teacher is never wrapped: it has no gradients and its
EMA update is identical on every rank. FSDP (``train.distributed: fsdp``, large models on CUDA)
shards every block and sub-network with ``torch.distributed.fsdp.fully_shard``; it is not exercised
by the CPU tests.
"""

from __future__ import annotations

import logging
from typing import Protocol

import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dinov2 import distributed
from dinov2.layers import Block

logger = logging.getLogger("dinov2")


class StudentTeacher(Protocol):
    """What the wrapping needs of ``SSLMetaArch`` (a Protocol, so this module does not import the
    meta-architecture that calls it)."""

    student: nn.ModuleDict
    teacher: nn.ModuleDict
    do_ibot: bool


def _broadcast_from_rank0(module: nn.Module) -> None:
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def _copy_student_to_teacher(arch: StudentTeacher) -> None:
    for k in arch.student.keys():
        arch.teacher[k].load_state_dict(arch.student[k].state_dict())


def _fully_shard(module: nn.Module) -> None:
    """Shard every transformer block, then the rest of ``module`` (FSDP2 wraps bottom-up)."""
    from torch.distributed.fsdp import fully_shard  # only FSDP runs need it

    for m in module.modules():
        if isinstance(m, Block):
            fully_shard(m)
    fully_shard(module)


def wrap_for_distributed(arch: StudentTeacher, strategy: str = "ddp") -> dict[str, nn.Module]:
    """Synchronise the student over ranks, copy it into the teacher, wrap; returns the DDP
    wrappers."""
    if not distributed.is_enabled():
        _copy_student_to_teacher(arch)
        return {}
    if strategy == "fsdp":
        _broadcast_from_rank0(arch.student)
        _copy_student_to_teacher(arch)
        for k in arch.student.keys():
            _fully_shard(arch.student[k])
            _fully_shard(arch.teacher[k])
        logger.info(
            "FSDP: student and teacher sub-networks sharded over %d ranks",
            distributed.get_global_size(),
        )
        return {}
    device_ids = (
        [arch.student.backbone.cls_token.device.index]
        if arch.student.backbone.cls_token.is_cuda
        else None
    )
    # The mask token gets no gradient when iBOT is off (no masks): let DDP tolerate unused
    # parameters then.
    wrappers = {
        k: DistributedDataParallel(
            m, device_ids=device_ids, find_unused_parameters=not arch.do_ibot
        )
        for k, m in arch.student.items()
    }  # DDP broadcasts rank 0's parameters: the teacher copy below is the same on every rank.
    _copy_student_to_teacher(arch)
    logger.info(
        "DDP: %d student sub-networks over %d ranks", len(wrappers), distributed.get_global_size()
    )
    return wrappers


def is_sharded(module: nn.Module) -> bool:
    """True if ``module`` holds FSDP2-sharded parameters (DTensor)."""
    from torch.distributed.tensor import DTensor  # only FSDP shards are DTensors

    return any(isinstance(p, DTensor) for p in module.parameters())


def full_state_dict(module: nn.Module) -> dict:
    """``module.state_dict()`` with FSDP shards gathered into full tensors (collective under
    FSDP)."""
    from torch.distributed.tensor import DTensor  # only FSDP shards are DTensors

    return {
        k: (v.full_tensor() if isinstance(v, DTensor) else v)
        for k, v in module.state_dict().items()
    }


def checkpoint_state(model: nn.Module, optimizer) -> tuple[dict, dict]:
    """``(model state, optimizer state)`` with full (unsharded) tensors, the same on every rank.

    Plain ``state_dict``s without FSDP; with FSDP the full-state-dict API of
    ``torch.distributed.checkpoint`` (a collective: every rank must call it).
    """
    if not is_sharded(model):
        return model.state_dict(), optimizer.state_dict()
    # FSDP runs only (collective, sharded state)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def load_checkpoint_state(
    model: nn.Module, optimizer, model_state: dict, optimizer_state: dict | None
) -> None:
    """Inverse of :func:`checkpoint_state` (``optimizer_state`` None: weights only)."""
    if not is_sharded(model):
        model.load_state_dict(model_state)
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
        return
    # FSDP runs only (collective, sharded state)
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=options)
    if optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
