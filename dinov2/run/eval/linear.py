"""Linear-probe launcher, official form::

    python dinov2/run/eval/linear.py --config-file RUN/config.yaml --pretrained-weights RUN/eval/training_N/teacher_checkpoint.pth \\
        --output-dir OUT --train-dataset ImageNet:split=TRAIN:root=… --val-dataset ImageNet:split=VAL:root=… \\
        [--epochs 10 --batch-size 128 --epoch-length 1250 --cache-features --noise gauss_100]

or from an experiment (every method's newest teacher checkpoint, its eval root, ``eval.linear.*``)::

    python dinov2/run/eval/linear.py --experiment configs/experiments/demo.yaml [--method nc] [key=value ...]

Errors in the inputs (missing files, an index-less dataset, a checkpoint of another architecture)
end with one line on stderr and exit code 2. The logic lives in :mod:`dinov2.eval.linear`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from dinov2.eval.linear_heads import LEARNING_RATES, N_LAST_BLOCKS_LIST

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


def get_args_parser() -> argparse.ArgumentParser:
    from dinov2.eval.setup import get_args_parser as base_parser
    from utils.config import add_experiment_args

    parser = base_parser(description="Linear probe of a frozen DINOv2 backbone")
    parser.add_argument(
        "--train-dataset", dest="train_dataset_str", help="dataset string of the training split"
    )
    parser.add_argument(
        "--val-dataset", dest="val_dataset_str", help="dataset string of the validation split"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--batch-size", type=int, default=128, help="lrs are scaled by batch size / 256"
    )
    parser.add_argument(
        "--epoch-length", type=int, default=None, help="iterations per epoch (default: one pass)"
    )
    parser.add_argument(
        "--save-checkpoint-frequency", type=int, default=20, help="epochs between checkpoints"
    )
    parser.add_argument(
        "--eval-period-iterations", type=int, default=None, help="validation every N iterations"
    )
    parser.add_argument("--learning-rates", nargs="+", type=float, default=list(LEARNING_RATES))
    parser.add_argument("--n-last-blocks", nargs="+", type=int, default=list(N_LAST_BLOCKS_LIST))
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument(
        "--cache-features", action="store_true", help="fast mode: cached, unaugmented features"
    )
    parser.add_argument(
        "--noise", default=None, help="on-the-fly noise for both splits of a clean dataset"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="redo an evaluation whose results exist"
    )
    parser.add_argument(
        "--method", action="append", help="with --experiment: methods to evaluate (default all)"
    )
    add_experiment_args(parser)
    return parser


def run_one(args: argparse.Namespace) -> dict:
    """One linear probe from explicit official arguments."""
    from dinov2.eval.data import eval_datasets
    from dinov2.eval.linear import run_linear_probe
    from dinov2.eval.setup import default_device, setup_and_build_model

    for flag, value in (
        ("--pretrained-weights", args.pretrained_weights),
        ("--train-dataset", args.train_dataset_str),
        ("--val-dataset", args.val_dataset_str),
        ("--output-dir", args.output_dir),
    ):
        if not value:
            raise ValueError(f"{flag} is required (or pass --experiment FILE)")
    device = default_device()
    model, dtype = setup_and_build_model(args, device)
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
        autocast_dtype=dtype,
    )


def experiment_runs(args: argparse.Namespace) -> list[argparse.Namespace]:
    """Per-method official arguments derived from ``--experiment`` (``eval.linear.*`` settings)."""
    from dinov2.eval.pipeline import method_eval_args
    from utils.config import load_experiment

    cfg = load_experiment(args.experiment, args.overrides)
    runs = []
    for method_args in method_eval_args(cfg, args.method):
        run = argparse.Namespace(**vars(args))
        lin = cfg.eval.linear
        run.__dict__.update(
            method_args,
            epochs=lin.epochs,
            batch_size=lin.batch_size,
            epoch_length=lin.epoch_length,
            cache_features=lin.fast,
            resize_size=cfg.eval.resize_size,
            crop_size=cfg.eval.crop_size,
            num_workers=cfg.eval.num_workers,
            output_dir=str(method_args["eval_dir"]),
        )
        runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from utils.config import error_line

    try:
        runs = experiment_runs(args) if args.experiment else [args]
        from dinov2.eval.linear import RESULTS_NAME
        from dinov2.eval.setup import prepare_output

        for run in runs:
            if prepare_output(run, "linear", RESULTS_NAME, SETTINGS_KEYS, args.overwrite):
                continue
            results = run_one(run)
            print(
                json.dumps(
                    {
                        "output_dir": run.output_dir,
                        "mode": results["mode"],
                        "top1": results["top1"],
                        "top5": results["top5"],
                        "best": results["best_classifier"]["name"],
                    }
                )
            )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
