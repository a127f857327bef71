"""Linear probe: fast mode (cached features) vs official protocol mode, same backbone and data.

Data: the embedded MNIST-5k (4000 train / 1000 val digits, ``utils.embedded.build_mnist5k``),
indexed and read through the DINOv2 dataset string like any ImageFolder root. Backbone: the
``vit_pico_cpu`` preset (ViT-pico/8, randomly initialised with a fixed seed). Both modes train the
52 heads for the same number of epochs and iterations at the same batch size; protocol mode runs the
backbone on augmented (RandomResizedCrop + flip) batches every iteration, fast mode extracts
unaugmented features once. Prints and writes (``--out``) a JSON record: wall time of each mode,
their ratio, and top-1/top-5 of the best head of each.

    python bench/linear_probe_speed.py [--epochs 3] [--batch-size 128] [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from utils.cli import command

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"


def build_data(root: Path) -> str:
    from dinov2.data.datasets.extra import build_index
    from utils.embedded import build_mnist5k

    build_mnist5k(root)
    build_index(root)
    return f"ImageNet:split={{}}:root={root}"


def run_mode(fast: bool, dataset_fmt: str, args: argparse.Namespace) -> dict:
    from dinov2.eval.data import eval_datasets
    from dinov2.eval.linear import run_linear_probe
    from dinov2.eval.setup import build_model_for_eval, load_model_config

    torch.manual_seed(0)  # the same random backbone in both modes
    model = build_model_for_eval(load_model_config(CONFIG), None)
    train, val = eval_datasets(
        dataset_fmt.format("TRAIN"),
        dataset_fmt.format("VAL"),
        args.size,
        args.size,
        train_augment=not fast,
    )
    start = time.perf_counter()
    results = run_linear_probe(
        model,
        train,
        val,
        fast=fast,
        epochs=args.epochs,
        batch_size=args.batch_size,
        epoch_length=len(train) // args.batch_size,
        num_workers=args.workers,
    )
    return {
        "wall_s": time.perf_counter() - start,
        "top1": results["top1"],
        "top5": results["top5"],
        "best": results["best_classifier"]["name"],
    }


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--size", type=int, default=32, help="Resize and crop size of the 28x28 digits"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader processes")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON record here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="linear_probe_speed.") as tmp:
        fmt = build_data(Path(tmp) / "mnist5k")
        fast = run_mode(True, fmt, args)
        protocol = run_mode(False, fmt, args)
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s), CPU",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "size": args.size,
        "fast": fast,
        "protocol": protocol,
        "speedup": protocol["wall_s"] / fast["wall_s"],
        "top1_diff": fast["top1"] - protocol["top1"],
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
