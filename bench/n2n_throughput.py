"""Neighbor2Neighbor throughput on the current device: training iterations/s and denoising images/s.

Training: ``neighbor2neighbor.train.train_step`` (sub-sampler + loss + Adam step) on random batches,
reference UNet (n_feature 48), batch 4, for the given crop sizes. Denoising:
``neighbor2neighbor.denoiser.denoise_tensor`` on batches of square images. bf16 autocast on CUDA.
Usage: ``python bench/n2n_throughput.py [--crops 128 256] [--sizes 256 512] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone

import torch

from neighbor2neighbor.denoiser import denoise_tensor
from neighbor2neighbor.train import train_step
from neighbor2neighbor.unet import UNet
from utils.cli import command
from utils.runtime import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_its(device: torch.device, crop: int, batch: int, n_iter: int, amp: bool) -> float:
    """Training iterations/s after two warm-up steps."""
    torch.manual_seed(0)
    model = UNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, crop, crop, device=device)
    for _ in range(2):
        train_step(model, opt, x, gen, gamma=1.0, amp=amp)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n_iter):
        train_step(model, opt, x, gen, gamma=1.0, amp=amp)
    _sync(device)
    return n_iter / (time.perf_counter() - t0)


def denoise_ips(device: torch.device, size: int, batch: int, n_iter: int, amp: bool) -> float:
    """Denoised images/s (batches of ``batch`` images of ``size``²) after one warm-up batch."""
    torch.manual_seed(0)
    model = UNet().to(device).eval()
    x = torch.rand(batch, 3, size, size, device=device)
    denoise_tensor(model, x, amp=amp)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n_iter):
        denoise_tensor(model, x, amp=amp)
    _sync(device)
    return n_iter * batch / (time.perf_counter() - t0)


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device, "--device")
    amp = device.type == "cuda"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.processor() or ''}"
    )
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {name.strip()}, "
        f"{args.threads} thread(s), "
        f"torch {torch.__version__}, {'bf16 autocast' if amp else 'fp32'}"
    )
    print("| measurement | value |\n|---|---|")
    for crop in args.crops:
        its = train_its(device, crop, args.batch_size, args.iters, amp)
        print(f"| training, batch {args.batch_size} × {crop}² crops | {its:.3f} it/s |")
    for size in args.sizes:
        ips = denoise_ips(device, size, args.batch_size, args.iters, amp)
        print(f"| denoising {size}² images, batch {args.batch_size} | {ips:.2f} images/s |")


if __name__ == "__main__":
    raise SystemExit(main())
