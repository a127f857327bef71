"""DDP and FSDP2 on CPU with 2 gloo processes: the same global batch gives the same losses and
parameters as 1 process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch.distributed.tensor import DTensor

REPO = Path(__file__).resolve().parents[3]
TINY_CONFIG = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
N_IMAGES, N_LOCAL, GRID, N_STEPS = 4, 2, 4, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_crops(step: int) -> list[dict]:
    """Per-image crops and masks of one step; every global crop has exactly 3 masked patches, so
    each rank holds the same number of masked patches (the iBOT centre is a mean of per-rank
    means)."""
    g = torch.Generator().manual_seed(step)
    images = []
    for _ in range(N_IMAGES):
        masks = torch.zeros(2, GRID * GRID, dtype=torch.bool)
        for c in range(2):
            masks[c, torch.randperm(GRID * GRID, generator=g)[:3]] = True
        images.append(
            {
                "global": torch.randn(2, 3, 32, 32, generator=g),
                "local": torch.randn(N_LOCAL, 3, 16, 16, generator=g),
                "masks": masks,
            }
        )
    return images


def collate(images: list[dict]) -> dict:
    """Crop-major layout of ``collate_data_and_cast``: crop 0 of every image, then crop 1, ..."""
    masks = torch.cat([torch.stack([im["masks"][c] for im in images]) for c in range(2)])
    indices = masks.flatten().nonzero().flatten()
    return {
        "collated_global_crops": torch.cat(
            [torch.stack([im["global"][c] for im in images]) for c in range(2)]
        ),
        "collated_local_crops": torch.cat(
            [torch.stack([im["local"][c] for im in images]) for c in range(N_LOCAL)]
        ),
        "collated_masks": masks,
        "mask_indices_list": indices,
        "masks_weight": (1 / masks.sum(-1, keepdim=True).float()).expand_as(masks)[masks],
        "upperbound": len(indices),
        "n_masked_patches": torch.tensor([len(indices)]),
    }


def run_steps(rank: int, world_size: int, strategy: str = "ddp") -> tuple[list[dict], dict]:
    """Build the tiny model (KoLeo off: it is per-rank by design), train N_STEPS on this rank's
    images."""
    from dinov2.train.schedules import apply_optim_scheduler
    from dinov2.train.ssl_meta_arch import SSLMetaArch
    from dinov2.train.train import build_optimizer, clip_gradients_and_step, reduce_losses
    from dinov2.utils.config import load_training_config

    torch.set_num_threads(1)
    cfg = load_training_config(
        TINY_CONFIG, ["dino.koleo_loss_weight=0", f"train.distributed={strategy}"]
    )
    torch.manual_seed(rank)  # different inits per rank: DDP must broadcast rank 0's weights
    if world_size == 1:
        torch.manual_seed(0)
    model = SSLMetaArch(cfg)
    model.prepare_for_distributed_training()
    model.train()
    optimizer = build_optimizer(cfg, model.get_params_groups())
    per_rank = N_IMAGES // world_size
    history = []
    for step in range(N_STEPS):
        images = image_crops(step)[rank * per_rank : (rank + 1) * per_rank]
        apply_optim_scheduler(optimizer, lr=1e-3, wd=0.04, last_layer_lr=1e-3)
        optimizer.zero_grad(set_to_none=True)
        history.append(reduce_losses(model.forward_backward(collate(images), teacher_temp=0.05)))
        clip_gradients_and_step(cfg, model, optimizer)
        model.update_teacher(0.9)
    # FSDP holds shards (DTensor): gather full tensors (a collective, so on every rank).
    state = {
        k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
        for k, v in model.state_dict().items()
    }
    return history, state


def ddp_worker(rank: int, world_size: int, port: int, out: str, strategy: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    from dinov2 import distributed

    distributed.enable()
    assert distributed.is_enabled() and distributed.get_global_size() == world_size
    history, state = run_steps(rank, world_size, strategy)
    if distributed.is_main_process():
        torch.save({"history": history, "state": state}, out)
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path, strategy):
    # Rank 0 seeds the weights with seed 0, as the single process does.
    out = tmp_path / "ddp.pt"
    mp.spawn(ddp_worker, args=(2, free_port(), str(out), strategy), nprocs=2, join=True)
    ddp = torch.load(out, weights_only=True)
    history, state = run_steps(rank=0, world_size=1)
    for single_step, ddp_step in zip(history, ddp["history"]):
        assert single_step.keys() == ddp_step.keys()
        for k in single_step:
            assert abs(single_step[k] - ddp_step[k]) < 1e-5 * max(1.0, abs(single_step[k])), k
    for k, v in state.items():
        torch.testing.assert_close(ddp["state"][k], v, rtol=1e-4, atol=1e-6, msg=k)
    # Training moved the weights (a vacuous comparison of untouched weights would also pass).
    assert not torch.equal(
        state["student.backbone.blocks.0.attn.qkv.weight"],
        state["teacher.backbone.blocks.0.attn.qkv.weight"],
    )
