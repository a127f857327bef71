"""Train the Neighbor2Neighbor denoiser (stage 2): ``python -m neighbor2neighbor.train``.

One readable loop: build (model, Adam, step decay, data, validation photos) → resume from
``checkpoint.pth`` if there is one → per epoch: train on random crops, validate PSNR/SSIM on noised
``skimage.data`` photos, write ``model_last.pth`` (and ``model_best.pth`` on a new best PSNR), the
training state, one JSON line of metrics → completion marker. A finished run skips itself; a run
whose folder holds outputs of other settings (``.settings.n2n.json``) is refused unless
``--overwrite``, which starts it afresh. A non-finite loss stops the run before that step is applied
or saved (exit 1, no marker; the last good checkpoint stays as it was).

The training crops come from ``n2n.train_root``; with ``noise.at_load`` a folder of the noisy tree
is read as the clean tree plus the noise at load time (:mod:`utils.load_noise`, same pixels).

Resume is exact: crops, data order and sub-sampler masks derive from ``(seed, epoch)``, and the
optimizer, scheduler and RNG states are restored, so an interrupted run ends with the same weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from tqdm import tqdm

from neighbor2neighbor.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    save_model,
    torch_load,
    unet_arch,
)
from neighbor2neighbor.data import (
    EpochSampler,
    NoisyCropDataset,
    derived_seed,
    noisy_photos,
    training_selection,
)
from neighbor2neighbor.denoiser import MULTIPLE, denoise_tensor, to_uint8
from neighbor2neighbor.loss import N2NLoss, gamma_schedule, n2n_loss
from neighbor2neighbor.metrics import psnr_255, ssim
from neighbor2neighbor.subsample import generate_mask_pair
from neighbor2neighbor.unet import UNet
from utils.atomic import atomic_write_text
from utils.cli import command
from utils.config import DEMO_EXPERIMENT, add_experiment_args, load_experiment, save_resolved
from utils.load_noise import noisy_tree_source
from utils.runtime import MetricsWriter, autocast, resolve_device
from utils.settings_record import check_settings, save_settings

log = logging.getLogger(__name__)
STATE_FILE, BEST_FILE, LAST_FILE = "checkpoint.pth", "model_best.pth", "model_last.pth"
METRICS_FILE, DONE_FILE = "metrics.jsonl", "train_complete.json"
MASK_STREAM = 1  # seed-derivation tag of the sub-sampler masks (data uses its own derivations)
SETTINGS_STAGE = "n2n"
# What the trained weights depend on (out_dir, workers and device do not change them).
SETTINGS_KEYS = (
    "noise.spec",
    "noise.seed",
    "data.name",
    "n2n.train_root",
    "n2n.n_feature",
    "n2n.init_scale",
    "n2n.crop_size",
    "n2n.batch_size",
    "n2n.n_epoch",
    "n2n.n_samples_per_epoch",
    "n2n.lr",
    "n2n.lr_gamma",
    "n2n.lr_milestones",
    "n2n.lambda1",
    "n2n.lambda2",
    "n2n.increase_ratio",
    "n2n.val_photos",
    "n2n.val_size",
    "n2n.val_seed",
    "n2n.amp",
    "n2n.seed",
)
OWN_FILES = (STATE_FILE, BEST_FILE, LAST_FILE, METRICS_FILE, DONE_FILE, "config.yaml")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the step was not applied and nothing of it was saved."""


def lr_milestones(n_epoch: int, fractions: list[float]) -> list[int]:
    """Scheduler-step milestones as in the reference: ``int(f · n_epoch) - 1``.

    The scheduler steps after every epoch, so with 100 epochs the rate halves from epoch 20 on.
    Milestones below 1 are dropped: the reference's scheduler never reaches them either (short
    runs).
    """
    return [m for m in (int(f * n_epoch) - 1 for f in fractions) if m >= 1]


def train_step(
    model: UNet,
    optimizer: torch.optim.Optimizer,
    noisy: torch.Tensor,
    generator: torch.Generator,
    gamma: float,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    amp: bool = False,
) -> N2NLoss:
    """One optimizer step on a batch ``noisy`` (N, 3, S, S) already on the model's device."""
    mask1, mask2 = generate_mask_pair(noisy, generator)
    optimizer.zero_grad(set_to_none=True)
    with autocast(noisy.device, torch.bfloat16 if amp else None):
        losses = n2n_loss(model, noisy, mask1, mask2, gamma, lambda1, lambda2)
    if not torch.isfinite(losses.total.detach()):
        # Checked before the step, so the weights in memory (and any later save) are never poisoned.
        raise NonFiniteLossError(f"non-finite loss ({losses.total.item()})")
    losses.total.backward()
    optimizer.step()
    return losses


@torch.no_grad()
def validate(
    model: UNet, photos: list[tuple[str, np.ndarray, np.ndarray]], amp: bool = False
) -> dict[str, float]:
    """Mean PSNR (0–255) and SSIM of the denoised ``(name, clean, noisy)`` photos against the clean
    ones."""
    model.eval()
    psnrs, ssims = [], []
    for _, clean, noisy in photos:
        x = torch.from_numpy(noisy).permute(2, 0, 1).float().div_(255.0)
        pred = to_uint8(denoise_tensor(model, x, amp=amp))
        psnrs.append(psnr_255(pred, clean))
        ssims.append(ssim(pred, clean))
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims))}


def train_one_epoch(
    model: UNet,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    epoch: int,
    c: DictConfig,
    device: torch.device,
) -> dict[str, float]:
    """Train over one epoch of ``loader``; returns the mean losses and the number of steps."""
    model.train()
    gamma = gamma_schedule(epoch, c.n_epoch, c.increase_ratio)
    generator = torch.Generator().manual_seed(derived_seed(c.seed, epoch, MASK_STREAM))
    totals = np.zeros(3)
    n_steps = 0
    with tqdm(loader, desc=f"n2n epoch {epoch}/{c.n_epoch}", unit="batch", leave=False) as bar:
        for step, noisy in enumerate(bar):
            noisy = noisy.to(device, non_blocking=True)
            try:
                losses = train_step(
                    model, optimizer, noisy, generator, gamma, c.lambda1, c.lambda2, c.amp
                )
            except NonFiniteLossError as e:
                raise NonFiniteLossError(
                    f"{e} at epoch {epoch} step {step}; stopped, the last good checkpoint in "
                    f"{c.out_dir} is intact: "
                    "lower n2n.lr or check the data, then re-run"
                ) from None
            totals += [losses.total.item(), losses.rec.item(), losses.reg.item()]
            n_steps += 1
            bar.set_postfix(loss=f"{totals[0] / n_steps:.5f}")
    mean = totals / max(n_steps, 1)
    return {
        "gamma": gamma,
        "loss": mean[0],
        "loss_rec": mean[1],
        "loss_reg": mean[2],
        "n_steps": n_steps,
    }


def _resume(
    out: Path, model: UNet, optimizer, scheduler, device: torch.device
) -> tuple[int, float]:
    """Restore the training state if ``checkpoint.pth`` exists; returns (last finished epoch, best
    PSNR)."""
    path = out / STATE_FILE
    if not path.is_file():
        return 0, -float("inf")
    state = torch_load(path)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    except (KeyError, RuntimeError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else repr(e)
        raise CheckpointError(
            f"cannot resume from {path} (another config?): {reason[:200]}"
        ) from None
    epoch = int(state["epoch"])
    # Metric lines of epochs after the checkpoint were written before an interruption: redone now.
    MetricsWriter(out / METRICS_FILE).drop_from("epoch", epoch + 1)
    log.info("resumed from %s after epoch %d", path, epoch)
    return epoch, float(state["best_psnr"])


def _save_state(
    out: Path, model, optimizer, scheduler, epoch: int, best_psnr: float, device
) -> None:
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "arch": unet_arch(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "best_psnr": best_psnr,
        "rng": rng,
    }
    atomic_torch_save(state, out / STATE_FILE)


def clear_outputs(out: Path) -> None:
    """``--overwrite``: remove this stage's own files from ``out`` (nothing else in the folder is
    touched)."""
    for name in OWN_FILES:
        (out / name).unlink(missing_ok=True)


def train(
    cfg: DictConfig, stop_after_epoch: int | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Run (or resume, or skip if finished) the training of ``cfg.n2n``; returns the last metrics
    line.

    ``stop_after_epoch`` ends this process after that epoch, as an interruption would (tests,
    budgets). ``overwrite`` starts afresh whatever the folder holds (the stage's own files are
    replaced).
    """
    c, out = cfg.n2n, Path(cfg.n2n.out_dir)
    selection = training_selection(
        c.size_filter, c.min_side, c.max_side, c.crop_size, c.images_per_class, c.subset_seed
    )
    settings = {key: OmegaConf.select(cfg, key) for key in SETTINGS_KEYS} | selection.settings()
    has_outputs = (out / STATE_FILE).is_file() or (out / DONE_FILE).is_file()
    check_settings(
        out,
        SETTINGS_STAGE,
        settings,
        overwrite,
        what="the Neighbor2Neighbor run",
        has_outputs=has_outputs,
    )
    if overwrite:
        clear_outputs(out)
    if (out / DONE_FILE).is_file():
        log.info("%s is complete (%s); nothing to do", out, DONE_FILE)
        return json.loads((out / DONE_FILE).read_text())
    if c.crop_size <= 0 or c.crop_size % (2 * MULTIPLE):
        raise ValueError(
            f"config key 'n2n.crop_size' must be a positive multiple of {2 * MULTIPLE} "
            f"(the half-size sub-images go through five 2x pools), got {c.crop_size}"
        )
    if c.init_scale <= 0:
        raise ValueError(
            "config key 'n2n.init_scale' must be > 0 (reference 0.1, short runs 1.0), "
            f"got {c.init_scale}"
        )
    device = resolve_device(c.device, "n2n.device")
    torch.manual_seed(c.seed)  # the reference init draws from the global generator
    model = UNet(in_nc=3, out_nc=3, n_feature=c.n_feature, init_scale=c.init_scale).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=c.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, lr_milestones(c.n_epoch, list(c.lr_milestones)), c.lr_gamma
    )
    train_root, load_noise = noisy_tree_source(cfg, c.train_root)  # noise.at_load: clean + noise
    dataset = NoisyCropDataset(train_root, c.crop_size, c.seed, selection, load_noise)
    sampler = EpochSampler(len(dataset), c.n_samples_per_epoch, c.seed)
    loader = DataLoader(
        dataset,
        batch_size=c.batch_size,
        sampler=sampler,
        num_workers=c.workers,
        pin_memory=device.type == "cuda",
    )
    photos = noisy_photos(list(c.val_photos), cfg.noise.spec, c.val_seed, c.val_size)
    noisy_psnr = float(np.mean([psnr_255(noisy, clean) for _, clean, noisy in photos]))
    start_epoch, best_psnr = _resume(out, model, optimizer, scheduler, device)
    save_settings(out, SETTINGS_STAGE, settings)
    save_resolved(cfg, out)
    metrics_log = MetricsWriter(out / METRICS_FILE)
    last: dict[str, Any] = {}
    for epoch in range(start_epoch + 1, c.n_epoch + 1):
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        stats = train_one_epoch(model, optimizer, loader, epoch, c, device)
        train_s = time.perf_counter() - t0
        scheduler.step()
        metrics = validate(model, photos, c.amp)
        is_best = metrics["val_psnr"] > best_psnr
        best_psnr = max(best_psnr, metrics["val_psnr"])
        if is_best:
            save_model(model, out / BEST_FILE, epoch=epoch, val_psnr=metrics["val_psnr"])
        save_model(model, out / LAST_FILE, epoch=epoch, val_psnr=metrics["val_psnr"])
        _save_state(out, model, optimizer, scheduler, epoch, best_psnr, device)
        last = {
            "epoch": epoch,
            "lr": lr,
            **stats,
            "train_s": round(train_s, 3),
            **metrics,
            "val_noisy_psnr": noisy_psnr,
            "best_psnr": best_psnr,
        }
        metrics_log.write(last)
        log.info(
            "epoch %d: loss %.5f, val PSNR %.2f dB (noisy %.2f), SSIM %.4f",
            epoch,
            stats["loss"],
            metrics["val_psnr"],
            noisy_psnr,
            metrics["val_ssim"],
        )
        if stop_after_epoch is not None and epoch >= stop_after_epoch and epoch < c.n_epoch:
            return last
    atomic_write_text(out / DONE_FILE, json.dumps(last) + "\n")
    return last


FLAG_KEYS = {
    "data": "n2n.train_root",
    "out_dir": "n2n.out_dir",
    "noise": "noise.spec",
    "epochs": "n2n.n_epoch",
    "batch_size": "n2n.batch_size",
    "crop_size": "n2n.crop_size",
    "n_feature": "n2n.n_feature",
    "n_samples_per_epoch": "n2n.n_samples_per_epoch",
    "lr": "n2n.lr",
    "val_size": "n2n.val_size",
    "workers": "n2n.workers",
    "device": "n2n.device",
    "seed": "n2n.seed",
    "init_scale": "n2n.init_scale",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m neighbor2neighbor.train",
        description="Train Neighbor2Neighbor on a noisy image tree "
        "(keys: configs/defaults.yaml, section n2n).",
    )
    add_experiment_args(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="train afresh, replacing the run's checkpoints, "
        "even if it is finished or of other settings",
    )
    types = {
        "epochs": int,
        "batch_size": int,
        "crop_size": int,
        "n_feature": int,
        "n_samples_per_epoch": int,
        "lr": float,
        "val_size": int,
        "workers": int,
        "seed": int,
        "init_scale": float,
    }
    for name, key in FLAG_KEYS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=types.get(name, str), help=f"sets {key}"
        )
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    flags = [
        f"{key}={getattr(args, name)}"
        for name, key in FLAG_KEYS.items()
        if getattr(args, name) is not None
    ]
    cfg = load_experiment(args.experiment or DEMO_EXPERIMENT, [*args.overrides, *flags])
    last = train(cfg, overwrite=args.overwrite)
    print(
        f"n2n: {OmegaConf.select(cfg, 'n2n.out_dir')}: epoch {last.get('epoch')}, "
        f"val PSNR {last.get('val_psnr', float('nan')):.2f} dB, "
        f"SSIM {last.get('val_ssim', float('nan')):.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
