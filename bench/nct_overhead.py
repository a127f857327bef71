"""NCT anchor regularizer cost: a full training step with and without it, same model and batch.

    python bench/nct_overhead.py [--batch-size 2] [--reps 3] [--warmup 1] [--threads 1]
                                 [--device auto]

The model comes from ``dinov2/configs/train/vits16_in100.yaml`` (ViT-S/16, 65536 prototypes,
2x224 + 8x96 crops). The NC step is the plain DINOv2 step (:meth:`SSLMetaArch.forward_backward`,
clipping, AdamW, EMA); the NCT step adds the anchor: a frozen teacher (loaded from a checkpoint of
this very model) on the paired global crops, its heads (``live``) and the λ-weighted DINO/iBOT
terms. Repetitions are interleaved (NC, NCT, NC, ...) so load changes hit both; figures are medians
after ``--warmup`` untimed steps of each. Reference point: the frozen teacher's forward is one more
teacher forward on the global crops, about +1/6 of the step's FLOPs for ViT-S/16 with 8 local
crops.

Prints one Markdown table row (date | device | setting | NC s/step | NCT s/step | overhead) and one
JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from utils.cli import command
from utils.runtime import resolve_device

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))


def _step(cfg, model, optimizer, batch: dict, sched: dict) -> float:
    from dinov2.train.schedules import apply_optim_scheduler
    from dinov2.train.train import clip_gradients_and_step

    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    apply_optim_scheduler(optimizer, sched["lr"], sched["wd"], sched["last_layer_lr"])
    optimizer.zero_grad(set_to_none=True)
    model.forward_backward(batch, teacher_temp=sched["teacher_temp"])
    clip_gradients_and_step(cfg, model, optimizer)
    model.update_teacher(sched["mom"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict:
    from train_throughput import _train_step_batch

    from dinov2.train.anchor import build_anchor
    from dinov2.train.schedules import build_schedulers
    from dinov2.train.train import build_meta_arch, build_optimizer
    from dinov2.utils.config import apply_scaling_rules_to_cfg, load_training_config

    device = resolve_device(args.device, "--device")
    config = REPO / "dinov2" / "configs" / "train" / "vits16_in100.yaml"
    opts = [f"train.batch_size_per_gpu={args.batch_size}", f"train.device={device.type}"]
    cfg = apply_scaling_rules_to_cfg(load_training_config(config, opts))
    torch.manual_seed(0)
    model = build_meta_arch(cfg, device).train()
    optimizer = build_optimizer(cfg, model.get_params_groups())
    sched = build_schedulers(cfg).at(cfg.optim.warmup_epochs * cfg.train.OFFICIAL_EPOCH_LENGTH)
    batch = _train_step_batch(cfg, args.batch_size)
    batch["collated_global_crops_paired"] = batch["collated_global_crops"] + 0.1 * torch.randn_like(
        batch["collated_global_crops"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"model": model.state_dict()}, Path(tmp) / "switch.pth")
        cfg.anchor.checkpoint, cfg.anchor.weight = str(Path(tmp) / "switch.pth"), 1.0
        anchor = build_anchor(cfg, device)
    times: dict[str, list[float]] = {"nc": [], "nct": []}
    for i in range(args.warmup + args.reps):
        for name, method_anchor in (("nc", None), ("nct", anchor)):
            model.anchor = method_anchor
            t = _step(cfg, model, optimizer, batch, sched)
            if i >= args.warmup:
                times[name].append(t)
    nc, nct = statistics.median(times["nc"]), statistics.median(times["nct"])
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.machine()}",
        "threads": torch.get_num_threads(),
        "setting": f"ViT-S/16, 2x224 + 8x96, batch {args.batch_size}, 65536 prototypes",
        "nc_s_per_step": round(nc, 3),
        "nct_s_per_step": round(nct, 3),
        "overhead": round(nct / nc - 1, 3),
        "times_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }


@command
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run(args)
    print(
        f"| {r['date']} | {r['device']}, {r['threads']} thread(s) | {r['setting']} | "
        f"{r['nc_s_per_step']} | {r['nct_s_per_step']} | {100 * r['overhead']:+.1f}% |"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    raise SystemExit(main())
