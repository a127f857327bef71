"""Linear-probe command, official form::

    python dinov2/run/eval/linear.py --config-file RUN/config.yaml \\
        --pretrained-weights RUN/eval/training_N/teacher_checkpoint.pth --output-dir OUT \\
        --train-dataset ImageNet:split=TRAIN:root=… --val-dataset ImageNet:split=VAL:root=… \\
        [--epochs 10 --batch-size 128 --epoch-length 1250 --no-cache-features --noise gauss_100]

or from an experiment (every method's newest teacher checkpoint, its eval root, ``eval.linear.*``)::

    python -m dinov2.run.eval.linear --experiment configs/experiments/demo.yaml [--method nc] \\
        [key=value ...]

Flag defaults are those of ``eval.*`` in ``configs/defaults.yaml`` (fast mode, cached features:
``eval.linear.fast``; ``--no-cache-features`` runs the official augmented protocol). Errors in the
inputs (missing files, an index-less dataset, a checkpoint of another architecture) end with one
line on stderr and exit code 2. The logic lives in :mod:`dinov2.eval.linear`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import torch

from dinov2.eval.data import eval_datasets
from dinov2.eval.linear import RESULTS_NAME, run_linear_probe
from dinov2.eval.linear_heads import LEARNING_RATES, N_LAST_BLOCKS_LIST
from dinov2.run.eval.command import EvalCommand, dataset_flags, flag, shared_flags
from utils.cli import command

# The arguments that determine the results (recorded next to them; another value is refused).
SETTINGS_KEYS = (
    "config_file",
    "opts",
    "pretrained_weights",
    "train_dataset_str",
    "val_dataset_str",
    "noise",
    "epochs",
    "batch_size",
    "epoch_length",
    "cache_features",
    "resize_size",
    "crop_size",
    "learning_rates",
    "n_last_blocks",
    "seed",
)

FLAGS = (
    *dataset_flags(),
    *shared_flags(batch_size_key="eval.linear.batch_size"),
    flag("--epochs", "eval.linear.epochs", type=int, help="training epochs of the heads"),
    flag(
        "--epoch-length",
        "eval.linear.epoch_length",
        type=int,
        help="iterations per epoch (None: one pass over the training set)",
    ),
    flag(
        "--cache-features",
        "eval.linear.fast",
        action=argparse.BooleanOptionalAction,
        help="fast mode: cached, unaugmented features (--no-cache-features: official protocol)",
    ),
    flag(
        "--save-checkpoint-frequency",
        type=int,
        default=20,
        help="epochs between checkpoints",
    ),
    flag(
        "--eval-period-iterations",
        type=int,
        default=None,
        help="validation every N iterations",
    ),
    flag("--learning-rates", nargs="+", type=float, default=list(LEARNING_RATES)),
    flag("--n-last-blocks", nargs="+", type=int, default=list(N_LAST_BLOCKS_LIST)),
    flag("--noise", default=None, help="on-the-fly noise for both splits of a clean dataset"),
    flag("--seed", type=int, default=0, help="head initialisation and data order"),
)


def evaluate(
    args: argparse.Namespace,
    model: torch.nn.Module,
    autocast_dtype: torch.dtype,
    device: torch.device,
) -> dict:
    train_ds, val_ds = eval_datasets(
        args.train_dataset_str,
        args.val_dataset_str,
        args.resize_size,
        args.crop_size,
        noise=args.noise,
        train_augment=not args.cache_features,
    )
    return run_linear_probe(
        model,
        train_ds,
        val_ds,
        fast=args.cache_features,
        epochs=args.epochs,
        batch_size=args.batch_size,
        output_dir=args.output_dir,
        epoch_length=args.epoch_length,
        learning_rates=args.learning_rates,
        n_last_blocks_list=args.n_last_blocks,
        num_workers=args.num_workers,
        device=device,
        seed=args.seed,
        eval_period_iterations=args.eval_period_iterations,
        save_checkpoint_frequency=args.save_checkpoint_frequency,
        autocast_dtype=autocast_dtype,
    )


def summary(args: argparse.Namespace, results: dict) -> str:
    best = results["best_classifier"]["name"]
    keys = ("mode", "top1", "top5")
    return json.dumps(
        {"output_dir": args.output_dir, **{k: results[k] for k in keys}, "best": best}
    )


LINEAR = EvalCommand(
    name="linear",
    description="Linear probe of a frozen DINOv2 backbone",
    results_name=RESULTS_NAME,
    settings_keys=SETTINGS_KEYS,
    flags=FLAGS,
    required=("--pretrained-weights", "--train-dataset", "--val-dataset", "--output-dir"),
    evaluate=evaluate,
    summary=summary,
)
get_args_parser = LINEAR.get_args_parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    return LINEAR.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
