"""Data pipeline cost: per-image vs batched multi-crop augmentation (``train.augmentation``).

    python bench/data_pipeline.py [--sections workers,noise,demo,gpu] [--n-batches 3]
                                  [--batch-size 32] [--demo-steps 12] [--demo-warmup 3]
                                  [--out-json FILE]

Sections (each prints Markdown rows and one JSON line):

- ``workers``: 500 x 375 JPEGs (quality 90) cut from the photos bundled with scikit-image; DINOv2
  crops 2 x 224 + 8 x 96. CPU-seconds per image (``time.process_time``, one thread) spent where a
  data-loader worker spends them (decode + per-image augmentation + collate, or decode + ragged
  collate) and where the main process spends them (the batched augmentation). Decode alone too.
- ``demo``: seconds per training step of ``make demo``'s pretraining (ViT-pico/8, batch 32, 32-px
  global and 2 x 16-px local crops, 28 x 28 digits, ``num_workers=0``), both paths: CPU-seconds
  and wall seconds of the data part and of the model part of a step, medians after a warm-up.
- ``noise``: CPU-seconds per image of noise at load time (``noise=SPEC``: decode the clean JPEG +
  add the noise) against decoding the noisy PNG that ``utils.generate_noise`` writes, on the same
  photos.
- ``gpu``: images/s of the full ViT-S/16 training step, batch 128, both paths (CUDA only; skipped
  with its reason otherwise).
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

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from dinov2.data import (  # noqa: E402
    DataAugmentationDINO,
    MaskingGenerator,
    collate_data_and_cast,
    make_dataset,
)
from dinov2.data.batched_augmentations import (  # noqa: E402
    BatchedDataAugmentationDINO,
    DecodedImage,
)
from dinov2.data.collate import collate_decoded_and_mask  # noqa: E402
from dinov2.data.datasets import build_index  # noqa: E402
from dinov2.train.data import BatchAugmenter  # noqa: E402
from utils.cli import command  # noqa: E402

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "cat",
)
JPEG_SIZE = (500, 375)  # width, height: a typical ImageNet photo
CROPS = dict(
    global_crops_scale=(0.32, 1.0),
    local_crops_scale=(0.05, 0.32),
    local_crops_number=8,
    global_crops_size=224,
    local_crops_size=96,
)
PATCH = 16


def write_jpeg_tree(root: Path, n_images: int) -> Path:
    """``n_images`` 500x375 JPEGs: random 3:4 windows of the bundled photos, resized
    (ImageNet-like)."""
    from skimage import data

    rng = np.random.default_rng(0)
    folder = root / "train" / "photos"
    folder.mkdir(parents=True)
    photos = [getattr(data, name)() for name in PHOTOS]
    for k in range(n_images):
        photo = photos[k % len(photos)]
        photo = np.repeat(photo[..., None], 3, 2) if photo.ndim == 2 else photo[..., :3]
        h, w = photo.shape[:2]
        crop_w = int(min(w, h * 4 / 3) * rng.uniform(0.6, 1.0))
        crop_h = int(crop_w * 3 / 4)
        top, left = rng.integers(0, h - crop_h + 1), rng.integers(0, w - crop_w + 1)
        window = Image.fromarray(photo[top : top + crop_h, left : left + crop_w])
        window.resize(JPEG_SIZE, Image.BICUBIC).save(folder / f"{k:04d}.jpg", quality=90)
    build_index(root)
    return root


def _cpu_seconds(fn, *args) -> tuple[float, object]:
    start = time.process_time()
    result = fn(*args)
    return time.process_time() - start, result


def bench_workers(root: Path, n_batches: int, batch_size: int) -> dict:
    """CPU-seconds per image: worker side and main-process side of both paths (one thread)."""
    torch.set_num_threads(1)
    grid = CROPS["global_crops_size"] // PATCH
    masks = dict(
        mask_ratio_tuple=(0.1, 0.5),
        mask_probability=0.5,
        n_tokens=grid * grid,
        mask_generator=MaskingGenerator((grid, grid), max_num_patches=0.5 * grid * grid),
    )
    dataset_str = f"ImageNet:split=TRAIN:root={root}"
    per_image = make_dataset(dataset_str=dataset_str, transform=DataAugmentationDINO(**CROPS))
    decoded = make_dataset(dataset_str=dataset_str, transform=DecodedImage())
    plain = make_dataset(dataset_str=dataset_str)
    main = BatchAugmenter(BatchedDataAugmentationDINO(**CROPS), 0, 0, torch.device("cpu"))
    n_images = n_batches * batch_size
    totals = dict(decode=0.0, per_image_worker=0.0, batched_worker=0.0, batched_main=0.0)
    for b in range(n_batches):
        indices = [(b * batch_size + k) % len(plain) for k in range(batch_size)]
        totals["decode"] += _cpu_seconds(lambda ids: [plain[i] for i in ids], indices)[0]
        totals["per_image_worker"] += _cpu_seconds(
            lambda ids: collate_data_and_cast(
                [per_image[i] for i in ids], dtype=torch.float32, **masks
            ),
            indices,
        )[0]
        seconds, batch = _cpu_seconds(
            lambda ids: collate_decoded_and_mask([decoded[i] for i in ids], **masks), indices
        )
        totals["batched_worker"] += seconds
        totals["batched_main"] += _cpu_seconds(main, {**batch, "first_position": b * batch_size})[0]
    result = {k: v / n_images for k, v in totals.items()}
    result["worker_ratio"] = result["per_image_worker"] / result["batched_worker"]
    result.update(
        n_images=n_images, batch_size=batch_size, crops="2x224 + 8x96", jpeg="500x375 q90"
    )
    return result


def write_digit_tree(root: Path, n_images: int) -> Path:
    """``n_images`` 28x28 grey digits (the embedded MNIST-5k) as PNGs in two class folders."""
    from utils.embedded import mnist5k_arrays

    digits, labels = mnist5k_arrays()
    for k in range(n_images):
        folder = root / "train" / f"digit{labels[k]}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits[k]).save(folder / f"{k:04d}.png")
    build_index(root)
    return root


def time_training_steps(cfg, device: torch.device, warmup: int, steps: int) -> dict[str, float]:
    """Median seconds of a training step split into data (loader + augmentation) and model (forward,
    backward, clip, AdamW, EMA), as CPU-seconds of this process and wall seconds. The step is
    :func:`dinov2.train.train.do_train`'s, with its own helpers; CUDA work is synchronised."""
    from dinov2.train.data import build_train_data_loader
    from dinov2.train.schedules import apply_optim_scheduler, build_schedulers
    from dinov2.train.train import (
        build_meta_arch,
        build_optimizer,
        clip_gradients_and_step,
        fix_random_seeds,
    )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fix_random_seeds(0)
    model = build_meta_arch(cfg, device)
    model.train()
    optimizer = build_optimizer(cfg, model.get_params_groups())
    schedules = build_schedulers(cfg)
    data_iter = iter(build_train_data_loader(cfg, 0, device=device))
    times: dict[str, list[float]] = {
        "data_cpu": [],
        "model_cpu": [],
        "data_wall": [],
        "model_wall": [],
    }
    for iteration in range(warmup + steps):
        sync()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        data = next(data_iter)
        sync()
        cpu1, wall1 = time.process_time(), time.perf_counter()
        sched = schedules.at(iteration)
        apply_optim_scheduler(optimizer, sched["lr"], sched["wd"], sched["last_layer_lr"])
        optimizer.zero_grad(set_to_none=True)
        model.forward_backward(data, teacher_temp=sched["teacher_temp"])
        clip_gradients_and_step(cfg, model, optimizer)
        model.update_teacher(sched["mom"])
        sync()
        cpu2, wall2 = time.process_time(), time.perf_counter()
        if iteration >= warmup:
            for key, value in (
                ("data_cpu", cpu1 - cpu0),
                ("model_cpu", cpu2 - cpu1),
                ("data_wall", wall1 - wall0),
                ("model_wall", wall2 - wall1),
            ):
                times[key].append(value)
    result = {key: statistics.median(values) for key, values in times.items()}
    result["cpu_s_per_step"] = result["data_cpu"] + result["model_cpu"]
    result["wall_s_per_step"] = result["data_wall"] + result["model_wall"]
    return result


def bench_demo(
    root: Path, workdir: Path, steps: int, warmup: int, threads: int, config: Path
) -> dict:
    """Seconds per training step of the demo setting (``make demo``'s pretraining), both paths:
    CPU-seconds (robust on a shared machine) and wall seconds; see :func:`time_training_steps`."""
    from dinov2.utils.config import apply_scaling_rules_to_cfg, load_training_config

    torch.set_num_threads(threads)
    result: dict = {"threads": threads, "steps": steps, "setting": f"{config.stem}, batch 32"}
    for path in ("per_image", "batched"):
        opts = [
            f"train.output_dir={workdir / path}",
            f"train.dataset_path=ImageNet:split=TRAIN:root={root}",
            "train.batch_size_per_gpu=32",
            "train.num_workers=0",
            f"train.augmentation={path}",
            "train.OFFICIAL_EPOCH_LENGTH=25",
        ]
        cfg = apply_scaling_rules_to_cfg(load_training_config(config, opts))
        for key, value in time_training_steps(cfg, torch.device("cpu"), warmup, steps).items():
            result[f"{path}_{key}"] = value
    result["cpu_speedup"] = result["per_image_cpu_s_per_step"] / result["batched_cpu_s_per_step"]
    result["wall_speedup"] = result["per_image_wall_s_per_step"] / result["batched_wall_s_per_step"]
    return result


def _load_all(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def bench_noise(root: Path, noisy_parent: Path, specs: list[str]) -> dict:
    """CPU-seconds per image (one thread): clean JPEG + load-time noise vs the noisy PNG tree's
    file."""
    from utils.generate_noise import generate_noise

    torch.set_num_threads(1)
    result: dict = {}
    for spec in specs:
        noisy = noisy_parent / spec
        generate_noise(root, noisy, spec, seed=42, workers=1, splits=["train"])
        build_index(noisy)
        at_load = make_dataset(dataset_str=f"ImageNet:split=TRAIN:root={root}:noise={spec}")
        from_png = make_dataset(dataset_str=f"ImageNet:split=TRAIN:root={noisy}")
        n = len(at_load)
        result[spec] = {
            "jpeg_plus_noise": _cpu_seconds(_load_all, at_load)[0] / n,
            "noisy_png": _cpu_seconds(_load_all, from_png)[0] / n,
            "png_bytes": sum(p.stat().st_size for p in (noisy / "train").rglob("*.png")) / n,
        }
    result["jpeg_bytes"] = sum(p.stat().st_size for p in (root / "train").rglob("*.jpg")) / n
    return result


def bench_gpu(workdir: Path) -> dict:
    """Images/s of the full ViT-S/16 training step, batch 128, both paths (bench/gpu_suite.py's
    step)."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device on this machine (torch.cuda.is_available() is False)"}
    from gpu_suite import train_step_figures

    return {
        path: train_step_figures("vit_small", path, False, workdir, batch_size=128)
        for path in ("per_image", "batched")
    }


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default="workers,noise,demo,gpu")
    parser.add_argument("--n-batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--demo-steps", type=int, default=12)
    parser.add_argument("--demo-warmup", type=int, default=3)
    parser.add_argument(
        "--demo-threads", type=int, default=1, help="torch threads of the demo section"
    )
    parser.add_argument(
        "--demo-config",
        type=Path,
        default=REPO / "dinov2/configs/train/vit_pico_cpu.yaml",
        help="training preset of the demo section (batch 32, num_workers 0 are set)",
    )
    parser.add_argument("--out-json", type=Path, default=None)
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    report: dict = {
        "date": date,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
    }
    with tempfile.TemporaryDirectory(prefix="data_pipeline_") as tmp:
        tmp = Path(tmp)
        if "workers" in sections:
            r = report["workers"] = bench_workers(
                write_jpeg_tree(tmp / "jpeg", args.n_batches * args.batch_size),
                args.n_batches,
                args.batch_size,
            )
            print("| date | path | worker CPU-s / image | main-process CPU-s / image |")
            print(f"| {date} | decode only | {r['decode']:.4f} | – |")
            print(f"| {date} | per_image | {r['per_image_worker']:.4f} | – |")
            print(f"| {date} | batched | {r['batched_worker']:.4f} | {r['batched_main']:.4f} |")
            print(f"worker ratio per_image / batched: {r['worker_ratio']:.1f}x")
        if "noise" in sections:
            jpeg_root = tmp / "jpeg"
            if not jpeg_root.exists():
                write_jpeg_tree(jpeg_root, args.n_batches * args.batch_size)
            r = report["noise"] = bench_noise(jpeg_root, tmp / "noisy", ["gauss_100", "shot_3"])
            print(
                "| date | spec | clean JPEG + noise CPU-s / image "
                "| noisy PNG decode CPU-s / image | PNG kB / JPEG kB |"
            )
            for spec in ("gauss_100", "shot_3"):
                print(
                    f"| {date} | {spec} | {r[spec]['jpeg_plus_noise']:.4f} "
                    f"| {r[spec]['noisy_png']:.4f} | "
                    f"{r[spec]['png_bytes'] / 1e3:.0f} / {r['jpeg_bytes'] / 1e3:.0f} |"
                )
        if "demo" in sections:
            r = report["demo"] = bench_demo(
                write_digit_tree(tmp / "digits", 256),
                tmp / "runs",
                args.demo_steps,
                args.demo_warmup,
                args.demo_threads,
                args.demo_config,
            )
            print(
                "| date | setting | path | CPU-s / step (data + model) "
                "| wall s / step (data + model) |"
            )
            for path in ("per_image", "batched"):
                print(
                    f"| {date} | {r['setting']}, {r['threads']} thread(s) | {path} | "
                    f"{r[path + '_cpu_s_per_step']:.3f} "
                    f"({r[path + '_data_cpu']:.3f} + {r[path + '_model_cpu']:.3f}) | "
                    f"{r[path + '_wall_s_per_step']:.3f} "
                    f"({r[path + '_data_wall']:.3f} + {r[path + '_model_wall']:.3f}) |"
                )
            print(
                f"speed-up per_image / batched: CPU {r['cpu_speedup']:.1f}x, "
                f"wall {r['wall_speedup']:.1f}x"
            )
        if "gpu" in sections:
            report["gpu"] = bench_gpu(tmp)
            print(f"gpu: {report['gpu']}")
    print(json.dumps(report))
    if args.out_json is not None:
        from utils.atomic import atomic_write_text

        atomic_write_text(args.out_json, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
