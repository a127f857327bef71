"""DINOv2 training throughput: our backbone against timm's ``VisionTransformer``, same run.

    python bench/train_throughput.py [--arch vit_small] [--patch-size 16] [--img-size 224]
                                     [--batch-size 8] [--reps 5] [--warmup 2] [--device auto]
                                     [--compile]

Backbone half (this file, engineer B): forward + backward images/s of
:func:`dinov2.models.vit_small` (LayerScale 1e-5, no drop path, ``block_chunks=0``) and of
``timm.models.vision_transformer.VisionTransformer`` with the same dimensions, LayerNorm eps,
LayerScale and no head. Both see the same input batch and a loss over all normalised tokens.
Repetitions are interleaved (ours, timm, ours, ...) so a change of machine load hits both;
the figure is the median over ``--reps`` after ``--warmup`` untimed steps.
On CUDA the step runs under bf16 autocast and the peak memory is reported too.

Full-training-step half (``--train-step``, engineer D): :func:`bench_train_step` times what one
iteration of the training loop does (student + EMA teacher + heads + losses, 2 global + 8 local
crops, backward, clipping, AdamW, EMA); ``--skip-backbone`` runs it alone.

Prints one Markdown table row (date | device | setting | ours img/s | timm img/s | wall ratio |
CPU-time ratio) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial

import torch
from torch import nn
from tqdm import tqdm

import dinov2.models as dinov2_models
from utils.cli import command
from utils.runtime import autocast, resolve_device

DIMS = {
    "vit_tiny": (192, 12, 3),
    "vit_small": (384, 12, 6),
    "vit_base": (768, 12, 12),
    "vit_large": (1024, 24, 16),
}


def build_models(
    arch: str, patch_size: int, img_size: int, device: torch.device
) -> tuple[nn.Module, nn.Module]:
    """Our backbone and timm's ViT with identical dimensions (both in train mode)."""
    from timm.models.vision_transformer import VisionTransformer

    embed_dim, depth, num_heads = DIMS[arch]
    ours = getattr(dinov2_models, arch)(
        patch_size=patch_size, img_size=img_size, init_values=1e-5, block_chunks=0
    )
    ref = VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        init_values=1e-5,
        num_classes=0,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        act_layer=nn.GELU,
    )
    return ours.to(device).train(), ref.to(device).train()


def ours_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x, is_training=True)
    return out["x_norm_clstoken"].float().mean() + out["x_norm_patchtokens"].float().mean()


def timm_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    tokens = model.forward_features(x)  # (B, 1 + N, D), final norm applied
    return tokens[:, 0].float().mean() + tokens[:, 1:].float().mean()


def timed_step(model: nn.Module, loss_fn: Callable, x: torch.Tensor, amp) -> tuple[float, float]:
    """Wall and process-CPU seconds of one forward + backward (gradients cleared before timing)."""
    model.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    with amp:
        loss = loss_fn(model, x)
    loss.backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def bench_backbone(args: argparse.Namespace, device: torch.device) -> dict:
    """Interleaved forward+backward timings of ours and timm; returns images/s and the ratio."""
    torch.manual_seed(0)
    ours, ref = build_models(args.arch, args.patch_size, args.img_size, device)
    if args.compile:
        ours, ref = torch.compile(ours), torch.compile(ref)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, device=device)
    use_bf16 = device.type == "cuda"
    amp = autocast(device, torch.bfloat16)
    runs = {"ours": (ours, ours_loss), "timm": (ref, timm_loss)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu_times: dict[str, list[float]] = {name: [] for name in runs}
    peak_mem: dict[str, float] = {}
    for i in tqdm(range(args.warmup + args.reps), desc="backbone fwd+bwd", unit="rep"):
        for name, (model, loss_fn) in runs.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds, cpu_seconds = timed_step(model, loss_fn, x, amp)
            if device.type == "cuda":
                peak_mem[name] = torch.cuda.max_memory_allocated(device) / 2**30
            if i >= args.warmup:
                times[name].append(seconds)
                cpu_times[name].append(cpu_seconds)
    ips = {name: args.batch_size / statistics.median(t) for name, t in times.items()}
    result = {
        "ours_img_s": round(ips["ours"], 2),
        "timm_img_s": round(ips["timm"], 2),
        "ratio": round(ips["ours"] / ips["timm"], 3),
        # CPU seconds per step depend less on other jobs sharing the machine than wall time does.
        "cpu_time_ratio": round(
            statistics.median(cpu_times["timm"]) / statistics.median(cpu_times["ours"]), 3
        ),
        "ours_times_s": [round(t, 4) for t in times["ours"]],
        "timm_times_s": [round(t, 4) for t in times["timm"]],
        "dtype": "bf16-autocast" if use_bf16 else "fp32",
    }
    if peak_mem:
        result["peak_mem_gib"] = {k: round(v, 2) for k, v in peak_mem.items()}
    return result


def _train_step_batch(cfg, batch_size: int) -> dict:
    """A collated batch of random pre-augmented crops (data loading is not part of the step)."""
    from dinov2.train.data import build_collate_fn

    c = cfg.crops
    g = torch.Generator().manual_seed(0)
    samples = [
        (
            {
                "global_crops": [
                    torch.randn(3, c.global_crops_size, c.global_crops_size, generator=g)
                    for _ in range(2)
                ],
                "local_crops": [
                    torch.randn(3, c.local_crops_size, c.local_crops_size, generator=g)
                    for _ in range(c.local_crops_number)
                ],
            },
            (),
        )
        for _ in range(batch_size)
    ]
    return build_collate_fn(cfg)(samples)


def bench_train_step(args: argparse.Namespace, device: torch.device) -> dict | None:
    """Images/s of a full DINOv2 training step (engineer D): student + EMA teacher + heads +
    DINO/iBOT/KoLeo losses, backward, gradient clipping, AdamW step and EMA update, as
    :func:`dinov2.train.train.do_train`.

    The model comes from ``--train-config`` (default ``vits16_in100.yaml``: ViT-S/16, 65536
    prototypes) with ``--arch``/``--patch-size``; crops are the config's (2x224 + 8x96). CUDA: bf16
    autocast. Returns None unless ``--train-step`` is given (a CPU step takes tens of seconds).
    """
    if not args.train_step:
        return None
    from dinov2.train.schedules import apply_optim_scheduler, build_schedulers
    from dinov2.train.train import build_meta_arch, build_optimizer, clip_gradients_and_step
    from dinov2.utils.config import apply_scaling_rules_to_cfg, load_training_config

    cfg = load_training_config(
        args.train_config,
        [
            f"student.arch={args.arch}",
            f"student.patch_size={args.patch_size}",
            f"train.batch_size_per_gpu={args.batch_size}",
            f"train.device={device.type}",
            f"train.compile={args.compile}",
        ],
    )
    apply_scaling_rules_to_cfg(cfg)
    torch.manual_seed(0)
    model = build_meta_arch(cfg, device).train()
    optimizer = build_optimizer(cfg, model.get_params_groups())
    sched = build_schedulers(cfg).at(
        cfg.optim.warmup_epochs * cfg.train.OFFICIAL_EPOCH_LENGTH
    )  # lr at its peak
    batch = _train_step_batch(cfg, args.batch_size)
    times, cpu_times = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in tqdm(range(args.warmup + args.reps), desc="full training step", unit="rep"):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        apply_optim_scheduler(optimizer, sched["lr"], sched["wd"], sched["last_layer_lr"])
        optimizer.zero_grad(set_to_none=True)
        model.forward_backward(batch, teacher_temp=sched["teacher_temp"])
        clip_gradients_and_step(cfg, model, optimizer)
        model.update_teacher(sched["mom"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    result = {
        "train_img_s": round(args.batch_size / statistics.median(times), 3),
        # images per process-CPU second: with one thread, less sensitive to other jobs than wall
        # time
        "train_img_per_cpu_s": round(args.batch_size / statistics.median(cpu_times), 3),
        "times_s": [round(t, 3) for t in times],
        "cpu_times_s": [round(t, 3) for t in cpu_times],
        "crops": f"2x{cfg.crops.global_crops_size} + "
        f"{cfg.crops.local_crops_number}x{cfg.crops.local_crops_size}",
        "prototypes": cfg.dino.head_n_prototypes,
        "dtype": "bf16-autocast" if model.autocast_dtype == torch.bfloat16 else "fp32",
    }
    if device.type == "cuda":
        result["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=sorted(DIMS), default="vit_small")
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--compile", action="store_true", help="torch.compile both models")
    p.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch default)"
    )
    p.add_argument(
        "--train-step", action="store_true", help="also time a full DINOv2 training step"
    )
    p.add_argument(
        "--train-config",
        default="dinov2/configs/train/vits16_in100.yaml",
        help="training config of the full-step measurement",
    )
    p.add_argument("--skip-backbone", action="store_true", help="only the full training step")
    return p.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    backbone = None if args.skip_backbone else bench_backbone(args, device)
    train_step = bench_train_step(args, device)
    record = {
        **vars(args),
        "bench": "train_throughput",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu {platform.machine()}",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "backbone": backbone,
        "train_step": train_step,
    }
    if backbone is not None:
        print(
            f"| {record['date'][:10]} | {device.type} ({record['torch_threads']} threads) "
            f"| {args.arch}/{args.patch_size} {args.img_size}px b{args.batch_size} "
            f"{backbone['dtype']}{' compile' if args.compile else ''} | "
            f"{backbone['ours_img_s']} | {backbone['timm_img_s']} | **{backbone['ratio']}** "
            f"| {backbone['cpu_time_ratio']} |"
        )
    if train_step is not None:
        print(
            f"| {record['date'][:10]} | {device.type} ({record['torch_threads']} threads) "
            f"| full step {args.arch}/{args.patch_size} {train_step['crops']} b{args.batch_size} "
            f"{train_step['prototypes']} prototypes "
            f"{train_step['dtype']}{' compile' if args.compile else ''} "
            f"| {train_step['train_img_s']} | "
            f"{train_step['train_img_per_cpu_s']} |"
        )
    print(json.dumps(record))


if __name__ == "__main__":
    raise SystemExit(main())
