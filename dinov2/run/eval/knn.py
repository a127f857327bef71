"""kNN command: weighted k-nearest-neighbour accuracy of a frozen backbone, official form::

    python -m dinov2.run.eval.knn --config-file RUN/config.yaml --pretrained-weights CKPT \\
        --train-dataset ImageNet:split=TRAIN:root=… --val-dataset ImageNet:split=VAL:root=… \\
        [--output-dir OUT --nb_knn 10 20 --noise gauss_100]

or from an experiment (``eval.knn.*``, ``eval.*`` sizes)::

    python -m dinov2.run.eval.knn --experiment configs/experiments/demo.yaml [--method nc] \\
        [key=value ...]

Flag defaults are those of ``eval.*`` in ``configs/defaults.yaml``. The logic lives in
:mod:`dinov2.eval.knn`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import torch

from dinov2.eval.data import eval_datasets
from dinov2.eval.knn import RESULTS_NAME, run_knn
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
    "nb_knn",
    "temperature",
    "resize_size",
    "crop_size",
)

FLAGS = (
    *dataset_flags(),
    *shared_flags(),
    flag("--nb_knn", "eval.knn.nb_knn", nargs="+", type=int, help="values of k"),
    flag("--temperature", "eval.knn.temperature", type=float, help="vote weight exp(sim / T)"),
    flag("--noise", default=None, help="on-the-fly noise for both splits, e.g. gauss_100"),
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
        train_augment=False,
    )
    return run_knn(
        model,
        train_ds,
        val_ds,
        ks=args.nb_knn,
        temperature=args.temperature,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=device,
        output_dir=args.output_dir or None,
        autocast_dtype=autocast_dtype,
    )


def summary(args: argparse.Namespace, results: dict) -> str:
    return json.dumps({"output_dir": args.output_dir, **results["best"]})


KNN = EvalCommand(
    name="knn",
    description="kNN evaluation of a frozen DINOv2 backbone",
    results_name=RESULTS_NAME,
    settings_keys=SETTINGS_KEYS,
    flags=FLAGS,
    required=("--train-dataset", "--val-dataset"),
    evaluate=evaluate,
    summary=summary,
)
get_args_parser = KNN.get_args_parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    return KNN.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
