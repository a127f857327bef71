"""One GPU check, sized for <= 8 minutes on one GPU, with one Markdown file of results.

    python bench/gpu_suite.py [--out outputs/gpu_suite/results.md] [--overwrite] [--dry-run]
                              [--only STEP ...] [--budget-s 480]

Steps, in order (each prints its figures and adds a section to the results file):

- ``cuda_tests``: the test-suite tests that only run on CUDA (bf16 SDPA, bf16 autocast, NCT anchor);
- ``bf16_sdpa_flash``: ViT-S/16 forward in bf16 autocast with SDPA restricted to the flash kernel,
  against the fp32 math kernel;
- ``train_<arch>_<augmentation>[_compile]``: full DINOv2 training steps (2 x 224 + 8 x 96 crops of
  500 x 375 JPEGs, default heads) for ViT-S/16 (batch 128) and ViT-B/16 (batch 64): images/s, data
  and model time, peak memory, MFU (``torch.utils.flop_counter`` FLOPs of one step over the GPU's
  dense bf16 peak); per-image and batched augmentation, ``train.compile`` off and on (batched);
- ``n2n_bf16``: Neighbor2Neighbor training iterations/s (crop 256, batch 4) and denoising images/s
  (512 x 512, batch 8) under bf16 autocast;
- ``linear_probe``: fast (cached features) and protocol linear probe, one epoch on MNIST-5k.

A step that cannot run is listed as skipped with its reason (``--dry-run``, no CUDA device, or the
time budget spent); a failing step records its one-line error and the suite goes on. The results
file is written atomically; an existing one is kept unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from utils.cli import command  # noqa: E402 (after the path fix above)

DEFAULT_OUT = REPO / "outputs" / "gpu_suite" / "results.md"
# Dense bf16 tensor-core peak FLOP/s by device name (vendor data sheets, SXM parts).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}
CUDA_TESTS = (
    "tests/dinov2/layers/test_attention.py::test_sdpa_attention_bf16_on_cuda_close_to_fp32",
    "tests/dinov2/models/test_vision_transformer.py::test_bf16_autocast_on_cuda_matches_fp32",
    "tests/dinov2/train/test_anchor.py::test_frozen_backbone_runs_in_bf16_on_cuda_and_moves_with_the_module",
)
TRAIN_SETTINGS = (  # (arch, batch size, augmentation, compile)
    ("vit_small", 128, "per_image", False),
    ("vit_small", 128, "batched", False),
    ("vit_small", 128, "batched", True),
    ("vit_base", 64, "per_image", False),
    ("vit_base", 64, "batched", False),
    ("vit_base", 64, "batched", True),
)


@dataclass
class Step:
    name: str
    what: str
    run: Callable[[Path], dict[str, Any]]


def peak_flops(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def run_cuda_tests(_: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", *CUDA_TESTS],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    summary = (
        proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-200:]
    )
    return {"exit status": proc.returncode, "pytest": summary}


def check_bf16_sdpa_flash(_: Path) -> dict[str, Any]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from dinov2.models import vit_small

    device = torch.device("cuda")
    torch.manual_seed(0)
    model = (
        vit_small(patch_size=16, img_size=224, init_values=1e-5, block_chunks=0).to(device).eval()
    )
    x = torch.randn(8, 3, 224, 224, device=device)
    with torch.no_grad():
        with sdpa_kernel([SDPBackend.MATH]):
            reference = model(x)
        with (
            sdpa_kernel([SDPBackend.FLASH_ATTENTION]),
            torch.autocast("cuda", dtype=torch.bfloat16),
        ):
            flash = model(x)
    diff = (flash.float() - reference).abs().max().item()
    cosine = torch.nn.functional.cosine_similarity(flash.float(), reference, dim=-1).min().item()
    return {
        "flash kernel ran": True,
        "max |bf16 flash - fp32 math| of CLS": f"{diff:.3g}",
        "min cosine": f"{cosine:.5f}",
    }


def train_step_figures(
    arch: str,
    augmentation: str,
    compile_model: bool,
    workdir: Path,
    batch_size: int = 128,
    device: torch.device | None = None,
    patch_size: int = 16,
    global_size: int = 224,
    local_size: int = 96,
    warmup: int = 5,
    steps: int = 10,
    n_images: int = 256,
    extra_opts: Sequence[str] = (),
) -> dict[str, Any]:
    """Images/s, data/model wall time, peak memory and MFU of full training steps (see the module
    doc)."""
    from data_pipeline import time_training_steps, write_jpeg_tree
    from torch.utils.flop_counter import FlopCounterMode

    from dinov2.train.train import build_meta_arch
    from dinov2.utils.config import apply_scaling_rules_to_cfg, load_training_config

    device = device or torch.device("cuda")
    root = workdir / "jpeg"
    if not root.exists():
        write_jpeg_tree(root, n_images)
    opts = [
        f"train.output_dir={workdir / 'run'}",
        f"train.dataset_path=ImageNet:split=TRAIN:root={root}",
        f"student.arch={arch}",
        f"student.patch_size={patch_size}",
        f"train.batch_size_per_gpu={batch_size}",
        f"train.augmentation={augmentation}",
        f"train.compile={compile_model}",
        "student.drop_path_rate=0.1",
        f"crops.global_crops_size={global_size}",
        f"crops.local_crops_size={local_size}",
        f"train.num_workers={min(16, os.cpu_count() or 1)}",
        f"train.device={device.type}",
        *extra_opts,
    ]
    cfg = apply_scaling_rules_to_cfg(
        load_training_config(REPO / "dinov2/configs/ssl_default_config.yaml", opts)
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_training_steps(cfg, device, warmup, steps)
    result: dict[str, Any] = {
        "images/s": round(batch_size / times["wall_s_per_step"], 1),
        "data s/step": round(times["data_wall"], 4),
        "model s/step": round(times["model_wall"], 4),
    }
    if device.type == "cuda":
        result["peak memory GiB"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    # FLOPs of one model step, counted on a fresh model (the counter sees the eager ops).
    from dinov2.train.data import build_train_data_loader

    batch = next(iter(build_train_data_loader(cfg, 0, device=device)))
    model = build_meta_arch(_without_compile(cfg), device)
    with FlopCounterMode(display=False) as counter:
        model.forward_backward(batch, teacher_temp=0.07)
    flops = counter.get_total_flops()
    result["GFLOP/step"] = round(flops / 1e9, 3)
    peak = peak_flops(device) if device.type == "cuda" else None
    if peak:
        result["MFU"] = f"{flops / times['wall_s_per_step'] / peak:.1%}"
        result["MFU of model time"] = f"{flops / times['model_wall'] / peak:.1%}"
    else:
        result["MFU"] = "unknown peak FLOP/s for this device"
    return result


def _without_compile(cfg):
    from omegaconf import OmegaConf

    cfg = cfg.copy()
    OmegaConf.update(cfg, "train.compile", False)
    return cfg


def run_n2n(_: Path) -> dict[str, Any]:
    from n2n_throughput import denoise_ips, train_its

    device = torch.device("cuda")
    return {
        "train it/s (crop 256, batch 4)": round(train_its(device, 256, 4, 20, amp=True), 2),
        "denoise images/s (512 px, batch 8)": round(denoise_ips(device, 512, 8, 10, amp=True), 1),
    }


def run_linear_probe(workdir: Path) -> dict[str, Any]:
    from linear_probe_speed import CONFIG, build_data

    from dinov2.eval.data import eval_datasets
    from dinov2.eval.linear import run_linear_probe as probe
    from dinov2.eval.setup import build_model_for_eval, load_model_config

    fmt = build_data(workdir / "mnist5k")
    result: dict[str, Any] = {}
    for mode, fast in (("fast", True), ("protocol", False)):
        torch.manual_seed(0)
        model = build_model_for_eval(load_model_config(CONFIG), None).cuda()
        train, val = eval_datasets(
            fmt.format("TRAIN"), fmt.format("VAL"), 32, 32, train_augment=not fast
        )
        start = time.perf_counter()
        out = probe(
            model,
            train,
            val,
            fast=fast,
            epochs=1,
            batch_size=256,
            epoch_length=len(train) // 256,
            num_workers=min(8, os.cpu_count() or 1),
            device="cuda",
        )
        result[f"{mode} wall s"] = round(time.perf_counter() - start, 2)
        result[f"{mode} top-1"] = round(float(out["top1"]), 2)
    return result


def all_steps() -> list[Step]:
    steps = [
        Step(
            "cuda_tests",
            "CUDA-only tests (bf16 SDPA, bf16 autocast, NCT anchor in bf16)",
            run_cuda_tests,
        ),
        Step(
            "bf16_sdpa_flash",
            "ViT-S/16 bf16 forward through the flash SDPA kernel vs fp32 math",
            check_bf16_sdpa_flash,
        ),
    ]
    for arch, batch, augmentation, compiled in TRAIN_SETTINGS:
        name = f"train_{arch}_{augmentation}" + ("_compile" if compiled else "")
        what = (
            f"DINOv2 {arch}/16 batch {batch}, {augmentation} augmentation, "
            f"compile {'on' if compiled else 'off'}"
        )
        steps.append(
            Step(
                name,
                what,
                lambda w, a=arch, b=batch, g=augmentation, c=compiled: train_step_figures(
                    a, g, c, w, batch_size=b
                ),
            )
        )
    steps.append(
        Step("n2n_bf16", "Neighbor2Neighbor training and denoising throughput, bf16", run_n2n)
    )
    steps.append(
        Step(
            "linear_probe",
            "linear probe, fast and protocol mode, 1 epoch of MNIST-5k",
            run_linear_probe,
        )
    )
    return steps


def _markdown(header: dict[str, str], records: list[dict[str, Any]]) -> str:
    lines = (
        ["# GPU suite results", ""]
        + [f"- {k}: {v}" for k, v in header.items()]
        + ["", "| step | what | status | figures |", "| --- | --- | --- | --- |"]
    )
    for r in records:
        figures = "; ".join(f"{k} {v}" for k, v in r.get("figures", {}).items())
        lines.append(f"| `{r['name']}` | {r['what']} | {r['status']} | {figures} |")
    return "\n".join(lines) + "\n"


def run_suite(
    out: Path, dry_run: bool, only: list[str] | None, budget_s: float
) -> list[dict[str, Any]]:
    from utils.atomic import atomic_write_text

    steps = all_steps()
    unknown = sorted(set(only or []) - {s.name for s in steps})
    if unknown:
        raise ValueError(
            f"unknown step {unknown[0]!r} in --only; valid: {', '.join(s.name for s in steps)}"
        )
    cuda = torch.cuda.is_available()
    header = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(0)
        if cuda
        else f"no CUDA device ({platform.machine()} CPU)",
        "torch": torch.__version__,
        "mode": "dry run (nothing executed)" if dry_run else f"run, budget {budget_s:.0f} s",
    }
    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_suite_") as tmp:
        for step in steps:
            record: dict[str, Any] = {"name": step.name, "what": step.what}
            if only and step.name not in only:
                record["status"] = "skipped: not in --only"
            elif dry_run:
                record["status"] = "skipped: --dry-run"
            elif not cuda:
                record["status"] = "skipped: no CUDA device (torch.cuda.is_available() is False)"
            elif time.perf_counter() - start > budget_s:
                record["status"] = f"skipped: time budget of {budget_s:.0f} s spent"
            else:
                step_start = time.perf_counter()
                try:
                    record["figures"] = step.run(Path(tmp) / step.name)
                    record["status"] = f"ran in {time.perf_counter() - step_start:.0f} s"
                except Exception as e:  # one failing step must not hide the others' figures
                    record["status"] = (
                        f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    )
            print(
                f"{step.name}: {record['status']} {json.dumps(record.get('figures', {}))}",
                flush=True,
            )
            records.append(record)
    atomic_write_text(out, _markdown(header, records))
    print(f"results: {out}")
    return records


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results Markdown file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the steps, run none, write the file"
    )
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    parser.add_argument(
        "--budget-s", type=float, default=480.0, help="start no step after this many seconds"
    )
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(
            f"{args.out} exists; pass --overwrite to replace it or --out another file"
        )
    records = run_suite(args.out, args.dry_run, args.only, args.budget_s)
    return 1 if any(r["status"].startswith("failed") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
