"""Does the DINOv2 engine learn at small scale? Teacher kNN vs iteration on clean MNIST-5k digits.

Trains the ``dinov2`` method's training config of an experiment (default
``configs/experiments/mnist_clean.yaml``) on the *clean* MNIST-5k training digits (4,000), exports
the teacher every ``--eval-every`` iterations and reports, for each export, the kNN top-1 of its
final CLS token on the 1,000 clean validation digits (cosine similarity, ``eval.knn`` settings, best
k), next to the same architecture untrained and to raw pixels (flattened 32×32 crops, same kNN).
Also writes the per-iteration DINO loss, teacher entropy and KoLeo to a figure, so collapse is
visible.

    python bench/mnist_learning.py [--experiment FILE] [--work-dir DIR] [--eval-every 250]
                                   [key=value ...]

Outputs in the work dir: ``curve.json``, ``curve.png``, the training run (``run/``), and a Markdown
table on stdout. Every invocation trains from scratch in a new ``run-*`` folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from dinov2.data.transforms import make_classification_eval_transform
from dinov2.eval.data import load_dataset
from dinov2.eval.exports import teacher_checkpoints
from dinov2.eval.features import ImageDataset
from dinov2.eval.knn import knn_accuracy
from dinov2.eval.pixels import PixelBackbone
from dinov2.eval.setup import build_model_for_eval
from dinov2.run.methods import training_config_for
from dinov2.run.pretrain import ensure_index
from dinov2.run.train.train import main as train_main
from dinov2.train.train import METRICS_FILE
from utils.cli import command
from utils.config import load_experiment
from utils.embedded import build_mnist5k

REPO = Path(__file__).resolve().parents[1]
RAW_PIXELS_KNN_REFERENCE = "raw pixels"


def _tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), torch.tensor(labels)


@torch.inference_mode()
def knn_top1(
    model: torch.nn.Module, train: tuple, val: tuple, ks: list[int], temperature: float
) -> float:
    def feats(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([model(x[i : i + 500]) for i in range(0, len(x), 500)])

    result = knn_accuracy(feats(train[0]), train[1], feats(val[0]), val[1], ks, temperature)
    return max(r["top1"] for r in result.values())


def loss_figure(run_dir: Path, curve: list[dict], log_k: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    its = [r["iteration"] for r in records]
    dino = [
        r.get("dino_local_crops_loss", 0.0) + r.get("dino_global_crops_loss", 0.0) for r in records
    ]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(its, dino, lw=0.8, label="DINO cross-entropy")
    a.plot(its, [r["teacher_entropy"] for r in records], lw=0.8, label="teacher entropy (per crop)")
    a.plot(
        its,
        [r["teacher_marginal_entropy"] for r in records],
        lw=0.8,
        label="teacher entropy (batch mean)",
    )
    a.axhline(log_k, color="k", ls="--", lw=0.8, label="log K (uniform collapse)")
    a.set_xlabel("iteration")
    a.set_ylabel("nats")
    a.legend(fontsize=7)
    b.plot(
        [c["iteration"] for c in curve], [c["knn_top1"] for c in curve], marker="o", label="teacher"
    )
    b.set_xlabel("iteration")
    b.set_ylabel("kNN top-1 on val digits (%)")
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiment", default=str(REPO / "configs" / "experiments" / "mnist_clean.yaml")
    )
    parser.add_argument("--work-dir", default=str(Path(tempfile.gettempdir()) / "mnist_learning"))
    parser.add_argument(
        "--eval-every", type=int, default=250, help="iterations between teacher exports"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument(
        "opts", nargs="*", metavar="KEY=VALUE", help="training-config overrides (official keys)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    cfg = load_experiment(args.experiment, [])
    root = build_mnist5k(cfg.data.clean_root)
    ensure_index(root)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    train_cfg = training_config_for(cfg, "dinov2")
    config_file = run_dir / "train.yaml"
    config_file.write_text(OmegaConf.to_yaml(train_cfg, resolve=True))
    dataset = f"ImageNet:split=TRAIN:root={root}:extra={root / 'extra'}"
    t0 = time.perf_counter()
    train_main(
        [
            "--config-file",
            str(config_file),
            "--output-dir",
            str(run_dir / "run"),
            f"train.dataset_path={dataset}",
            f"evaluation.eval_period_iterations={args.eval_every}",
            *args.opts,
        ]
    )
    train_s = time.perf_counter() - t0

    transform = make_classification_eval_transform(
        resize_size=cfg.eval.resize_size, crop_size=cfg.eval.crop_size
    )
    train = _tensors(ImageDataset(load_dataset(dataset), transform))
    val = _tensors(ImageDataset(load_dataset(dataset.replace("TRAIN", "VAL")), transform))
    ks, temperature = list(cfg.eval.knn.nb_knn), cfg.eval.knn.temperature
    model_cfg = OmegaConf.load(run_dir / "run" / "config.yaml")
    curve = [
        {
            "iteration": 0,
            "knn_top1": knn_top1(
                build_model_for_eval(model_cfg, None), train, val, ks, temperature
            ),
        }
    ]
    for iteration, path in teacher_checkpoints(run_dir / "run"):
        curve.append(
            {
                "iteration": iteration + 1,
                "knn_top1": knn_top1(
                    build_model_for_eval(model_cfg, path), train, val, ks, temperature
                ),
            }
        )
    pixels = knn_top1(PixelBackbone(cfg.eval.crop_size), train, val, ks, temperature)
    (run_dir / "curve.json").write_text(
        json.dumps({"curve": curve, "raw_pixels": pixels, "train_s": train_s}) + "\n"
    )
    loss_figure(
        run_dir / "run", curve, math.log(train_cfg.dino.head_n_prototypes), run_dir / "curve.png"
    )

    print(f"trained {curve[-1]['iteration']} iterations in {train_s:.0f} s ({run_dir})\n")
    print(
        "| iteration | "
        + " | ".join(str(c["iteration"]) for c in curve)
        + f" | {RAW_PIXELS_KNN_REFERENCE} |"
    )
    print("| --- |" + " ---: |" * (len(curve) + 1))
    print(
        "| kNN top-1 (%) | "
        + " | ".join(f"{c['knn_top1']:.1f}" for c in curve)
        + f" | {pixels:.1f} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
