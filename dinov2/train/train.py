"""DINOv2 pretraining loop: build → loop (data, forward/backward, clip, step, EMA, log, checkpoint)
→ finish.

The loop resumes from the newest valid checkpoint of ``train.output_dir`` (or starts from
``MODEL.WEIGHTS``), writes one JSON line per iteration to ``training_metrics.json`` and stops with
:class:`NonFiniteLossError` (naming the iteration) if a loss becomes NaN/inf, before the bad step is
applied or saved, so the last checkpoint stays a good one.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from dinov2 import distributed
from dinov2.train.anchor import build_anchor
from dinov2.train.branching import keep_iterations, load_branch_checkpoint
from dinov2.train.checkpointing import (
    Checkpointer,
    export_teacher,
    load_checkpoint_file,
    newest_valid_checkpoint,
    restore_rng_state,
)
from dinov2.train.collapse import CollapseMonitor
from dinov2.train.data import build_train_data_loader
from dinov2.train.parallel import checkpoint_state, full_state_dict, load_checkpoint_state
from dinov2.train.schedules import apply_optim_scheduler, build_schedulers
from dinov2.train.ssl_meta_arch import SSLMetaArch
from dinov2.utils.config import setup, write_config
from utils.runtime import MetricsWriter, resolve_device

logger = logging.getLogger("dinov2")

METRICS_FILE = "training_metrics.json"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the run stopped before applying or saving that step."""


# ------------------------------------------------------------------------------------------ build
def fix_random_seeds(seed: int) -> None:
    """Seed python, numpy and torch (official helper); the data stream has its own seeds (see
    train/data.py)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device(cfg: DictConfig) -> torch.device:
    """``train.device`` (``utils.runtime.resolve_device``); CUDA is this process's local rank."""
    device = resolve_device(cfg.train.device, "train.device")
    return torch.device("cuda", distributed.get_local_rank()) if device.type == "cuda" else device


def configure_precision(cfg: DictConfig, model: SSLMetaArch, device: torch.device) -> None:
    """CPU: fp32. CUDA: autocast in ``compute_precision.autocast_dtype``; fp16 adds a GradScaler."""
    if device.type != "cuda" or cfg.compute_precision.autocast_dtype == "fp32":
        return
    model.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[
        cfg.compute_precision.autocast_dtype
    ]
    if model.autocast_dtype == torch.float16 and cfg.compute_precision.grad_scaler:
        model.fp16_scaler = torch.amp.GradScaler("cuda")


def build_optimizer(cfg: DictConfig, params_groups: list[dict]) -> torch.optim.Optimizer:
    """AdamW; lr and weight decay are set every iteration by :func:`apply_optim_scheduler`."""
    return torch.optim.AdamW(params_groups, betas=(cfg.optim.adamw_beta1, cfg.optim.adamw_beta2))


def build_meta_arch(cfg: DictConfig, device: torch.device) -> SSLMetaArch:
    """Meta-architecture on ``device``, synchronised/wrapped for distributed training, optionally
    compiled."""
    model = SSLMetaArch(cfg).to(device)
    model.prepare_for_distributed_training()
    if cfg.train.compile:
        # In-place compile keeps the state_dict keys (no "_orig_mod." prefix).
        model.student.backbone.compile()
        model.teacher.backbone.compile()
    configure_precision(cfg, model, device)
    model.anchor = build_anchor(cfg, device)  # NCT regularizer (None without anchor.checkpoint)
    return model


def _first_mismatch(message: str) -> str:
    """The first problem key of a ``load_state_dict`` error (size mismatch, missing or unexpected
    key)."""
    import re

    for pattern, label in (
        (r"size mismatch for ([^:]+): (.*?)\.?$", "size mismatch: {0} ({1})"),
        (r'Missing key\(s\) in state_dict: "([^"]+)"', "missing key {0}"),
        (r'Unexpected key\(s\) in state_dict: "([^"]+)"', "unexpected key {0}"),
    ):
        m = re.search(pattern, message, flags=re.MULTILINE)
        if m:
            return label.format(*(g.strip() for g in m.groups()))[:200]
    return (message.strip().splitlines() or ["?"])[0][:200]


def load_initial_state(
    cfg: DictConfig, model: SSLMetaArch, optimizer: torch.optim.Optimizer, resume: bool
) -> tuple[int, int]:
    """Resume from the newest valid checkpoint, else branch off ``branch.checkpoint``, else
    initialise from ``MODEL.WEIGHTS``, else scratch.

    Returns ``(start_iteration, schedule_start)``.
    """
    found = newest_valid_checkpoint(cfg.train.output_dir) if resume else None
    if found is not None:
        path, ckpt = found
        try:
            load_checkpoint_state(model, optimizer, ckpt["model"], ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:  # another architecture: one line, not 167
            raise ValueError(
                f"{path} does not fit the model of this config ({_first_mismatch(str(e))}); train "
                "in a new --output-dir or restore the config the run was trained with"
            ) from None
        if model.fp16_scaler is not None and ckpt.get("grad_scaler"):
            model.fp16_scaler.load_state_dict(ckpt["grad_scaler"])
        restore_rng_state(ckpt["rng"][distributed.get_global_rank() % len(ckpt["rng"])])
        logger.info("resumed from %s at iteration %d", path, ckpt["iteration"])
        return int(ckpt["iteration"]), int(ckpt.get("schedule_start", 0))
    if cfg.branch.checkpoint:
        return load_branch_checkpoint(cfg, model, optimizer)
    if cfg.MODEL.WEIGHTS:
        ckpt = load_checkpoint_file(cfg.MODEL.WEIGHTS)
        if not isinstance(ckpt, dict) or "model" not in ckpt:
            raise ValueError(
                f"MODEL.WEIGHTS={cfg.MODEL.WEIGHTS} is not a training checkpoint (no 'model' "
                "entry); pass a model_<iteration>.pth of a training run"
            )
        load_checkpoint_state(model, optimizer, ckpt["model"], None)
        logger.info(
            "model initialised from MODEL.WEIGHTS=%s; fresh schedules from iteration 0",
            cfg.MODEL.WEIGHTS,
        )
    return 0, 0


# ------------------------------------------------------------------------------------- one step
def clip_gradients_and_step(
    cfg: DictConfig, model: SSLMetaArch, optimizer: torch.optim.Optimizer
) -> None:
    """Clip each student sub-network's gradient norm to ``optim.clip_grad`` (official), then
    step."""
    scaler = model.fp16_scaler
    if scaler is not None:
        scaler.unscale_(optimizer)
    if cfg.optim.clip_grad:
        for m in model.student.values():
            nn.utils.clip_grad_norm_(m.parameters(), cfg.optim.clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def reduce_losses(loss_dict: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean of every loss over the ranks, as Python floats."""
    names = sorted(loss_dict)
    values = torch.stack([loss_dict[k].float() for k in names])
    if distributed.is_enabled():
        dist.all_reduce(values)
        values /= distributed.get_global_size()
    return dict(zip(names, values.tolist()))


def check_finite(losses: dict[str, float], iteration: int, output_dir: str) -> None:
    bad = [k for k, v in losses.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss at iteration {iteration} "
            f"({', '.join(f'{k}={losses[k]}' for k in bad)}); stopped before applying the step. "
            f"The last good checkpoint in {output_dir} is intact: "
            "lower optim.base_lr or check the data, then re-run the same command to resume"
        )


def save_checkpoint(
    checkpointer: Checkpointer,
    model: SSLMetaArch,
    optimizer: torch.optim.Optimizer,
    done: int,
    schedule_start: int,
) -> None:
    """Full checkpoint after ``done`` iterations (every rank calls it: gathering states is
    collective)."""
    model.flush_center_updates()
    model_state, optimizer_state = checkpoint_state(model, optimizer)
    checkpointer.save(
        {
            "model": model_state,
            "optimizer": optimizer_state,
            "grad_scaler": model.fp16_scaler.state_dict() if model.fp16_scaler is not None else {},
            "iteration": done,
            "schedule_start": schedule_start,
        }
    )


# ------------------------------------------------------------------------------------------ loop
def do_train(cfg: DictConfig, model: SSLMetaArch, resume: bool = True) -> dict[str, Any]:
    """Train until ``optim.epochs * OFFICIAL_EPOCH_LENGTH`` (or ``train.stop_at_iteration``)
    iterations.

    Returns ``{"iteration": next iteration, "losses": last reduced losses}``.
    """
    output_dir = Path(cfg.train.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    model.train()
    optimizer = build_optimizer(cfg, model.get_params_groups())
    schedules = build_schedulers(cfg)
    start_iter, schedule_start = load_initial_state(cfg, model, optimizer, resume)
    if (
        distributed.is_main_process()
    ):  # only now: a config whose model does not fit the run never replaces its own
        write_config(cfg, output_dir)

    max_iter = cfg.optim.epochs * cfg.train.OFFICIAL_EPOCH_LENGTH
    stop_iter = min(cfg.train.stop_at_iteration or max_iter, max_iter)
    ckpt_period = cfg.train.checkpoint_period_iterations or 3 * cfg.train.OFFICIAL_EPOCH_LENGTH
    eval_period = cfg.evaluation.eval_period_iterations
    kept = keep_iterations(cfg)  # e.g. the NC/NCT switch epoch: always written, never pruned
    checkpointer = Checkpointer(output_dir, cfg.train.checkpoint_keep, kept)
    # One JSON object per iteration, by the main process; on resume, lines past it are dropped.
    metrics = MetricsWriter(output_dir / METRICS_FILE if distributed.is_main_process() else None)
    metrics.drop_from("iteration", start_iter)
    data_loader = build_train_data_loader(
        cfg, start_iter, device=device
    )  # batched augmentation runs on device
    global_batch = cfg.train.batch_size_per_gpu * distributed.get_global_size()
    collapse = CollapseMonitor(
        cfg.dino.head_n_prototypes,
        cfg.train.collapse_warning_epochs * cfg.train.OFFICIAL_EPOCH_LENGTH,
    )

    losses: dict[str, float] = {}
    progress = tqdm(
        range(start_iter, stop_iter),
        initial=start_iter,
        total=stop_iter,
        desc="DINOv2",
        disable=not distributed.is_main_process(),
        dynamic_ncols=True,
    )
    data_iter = iter(data_loader)
    for iteration in progress:
        t0 = time.perf_counter()
        data = next(data_iter)
        sched = schedules.at(iteration - schedule_start)
        apply_optim_scheduler(optimizer, sched["lr"], sched["wd"], sched["last_layer_lr"])
        optimizer.zero_grad(set_to_none=True)
        loss_dict = model.forward_backward(data, teacher_temp=sched["teacher_temp"])
        losses = reduce_losses(loss_dict)
        check_finite(losses, iteration, str(output_dir))
        clip_gradients_and_step(cfg, model, optimizer)
        model.update_teacher(sched["mom"])

        if device.type == "cuda":
            torch.cuda.synchronize(device)
        images_per_s = global_batch / (time.perf_counter() - t0)
        collapsed = collapse.update(losses, iteration)
        metrics.write(
            {
                "iteration": iteration,
                **losses,
                **sched,
                "images_per_s": images_per_s,
                "collapsed": collapsed,
            }
        )
        progress.set_postfix(loss=f"{losses['total_loss']:.3f}", lr=f"{sched['lr']:.2e}")

        done = iteration + 1
        if (eval_period > 0 and done % eval_period == 0) or done == max_iter:
            export_teacher(
                full_state_dict(model.teacher), output_dir, iteration
            )  # official: training_<iteration>
        if done % ckpt_period == 0 or done == stop_iter or done in kept:
            save_checkpoint(checkpointer, model, optimizer, done, schedule_start)
    progress.close()
    return {"iteration": max(stop_iter, start_iter), "losses": losses}


# ---------------------------------------------------------------------------------- entry point
def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("DINOv2 training", add_help=add_help)
    parser.add_argument(
        "--config-file",
        default="",
        metavar="FILE",
        help="training YAML (keys: ssl_default_config.yaml)",
    )
    parser.add_argument(
        "--output-dir", "--output_dir", default="", type=str, help="checkpoints, metrics, exports"
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="ignore checkpoints in the output dir (fresh run)"
    )
    parser.add_argument(
        "opts", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.epochs=10"
    )
    return parser


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Set up (config, distributed, seeds), build the model and train; returns :func:`do_train`'s
    summary."""
    if not args.output_dir:
        raise ValueError("--output-dir is required: checkpoints and metrics are written there")
    if args.no_resume and list(Path(args.output_dir).glob("model_*.pth")):
        raise FileExistsError(
            f"--no-resume: {args.output_dir} already holds checkpoints; choose a new --output-dir"
        )
    cfg = setup(args)
    device = get_device(cfg)

    fix_random_seeds(cfg.train.seed + distributed.get_global_rank())
    return do_train(cfg, build_meta_arch(cfg, device), resume=not args.no_resume)
