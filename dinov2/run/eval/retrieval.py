"""Retrieval command: revisited Oxford/Paris (or the mini set) with a frozen backbone, official
form::

    python -m dinov2.run.eval.retrieval --config-file RUN/config.yaml --pretrained-weights CKPT \\
        --data-root DATA --datasets roxford5k rparis6k --noise gauss_100 --output-dir OUT

or from an experiment (noisy queries and database with ``noise.spec``; the N2N + DINOv2 method
denoises them with ``denoise.checkpoint``; the mini set is built first when listed)::

    python -m dinov2.run.eval.retrieval --experiment configs/experiments/demo.yaml [key=value ...]

Flag defaults are those of ``eval.*`` in ``configs/defaults.yaml``. The logic lives in
:mod:`dinov2.eval.retrieval`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from omegaconf import DictConfig

from dinov2.data.transforms import make_classification_eval_transform
from dinov2.eval.retrieval.evaluate import RESULTS_NAME, run_retrieval
from dinov2.eval.retrieval.mini_set import NAME as MINI_SET
from dinov2.eval.retrieval.mini_set import build_mini_set
from dinov2.run.eval.command import EvalCommand, flag, shared_flags
from neighbor2neighbor.denoiser import Denoiser
from utils.cli import command

# The arguments that determine the results (recorded next to them; another value is refused).
SETTINGS_KEYS = (
    "config_file",
    "opts",
    "pretrained_weights",
    "data_root",
    "datasets",
    "noise",
    "denoiser",
    "crop_queries",
    "resize_size",
    "crop_size",
)

FLAGS = (
    *shared_flags(),
    # the default data root derives from the experiment's output_root: no default without one
    flag(
        "--data-root",
        "eval.retrieval.data_root",
        yaml_default=False,
        help="folder holding <dataset>/gnd_<dataset>.pkl and <dataset>/jpg/",
    ),
    flag(
        "--datasets",
        "eval.retrieval.datasets",
        nargs="+",
        help="roxford5k rparis6k (yours, standard layout) | mini (python -m "
        "dinov2.eval.retrieval.mini_set ROOT)",
    ),
    flag(
        "--crop-queries",
        "eval.retrieval.crop_queries",
        action=argparse.BooleanOptionalAction,
        help="crop queries to their box (standard protocol); off: whole queries (the paper)",
    ),
    # an experiment's retrieval is on its noise (noise.spec); the flag's default is no noise
    flag(
        "--noise",
        "noise.spec",
        yaml_default=False,
        default=None,
        help="on-the-fly noise, e.g. gauss_100 (seeds: db 42, queries 100)",
    ),
    flag("--denoiser", default=None, help="Neighbor2Neighbor checkpoint: denoise after the noise"),
)


def evaluate(
    args: argparse.Namespace,
    model: torch.nn.Module,
    autocast_dtype: torch.dtype,
    device: torch.device,
) -> dict:
    denoiser = None
    if args.denoiser:
        denoiser = Denoiser.from_checkpoint(args.denoiser, device=device).denoise_image
    transform = make_classification_eval_transform(
        resize_size=args.resize_size, crop_size=args.crop_size
    )
    return run_retrieval(
        model,
        args.data_root,
        args.datasets,
        transform,
        noise=args.noise,
        denoiser=denoiser,
        crop_queries=args.crop_queries,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=device,
        output_dir=args.output_dir or None,
    )


def summary(args: argparse.Namespace, results: dict) -> str:
    return "\n".join(
        f"{name}: mAP E {r['mAP_easy']:.2f} M {r['mAP_medium']:.2f} H {r['mAP_hard']:.2f}"
        for name, r in results.items()
    )


def per_method(cfg: DictConfig, method: str) -> dict:
    """The N2N + DINOv2 method sees denoised images: its queries and database are denoised."""
    return {"denoiser": cfg.denoise.checkpoint if method == "n2n_dinov2" else None}


def prepare(cfg: DictConfig) -> None:
    ret = cfg.eval.retrieval
    if MINI_SET in ret.datasets:
        build_mini_set(ret.data_root, size=ret.mini_size)


RETRIEVAL = EvalCommand(
    name="retrieval",
    description="Revisited Oxford/Paris retrieval of a frozen DINOv2 backbone",
    results_name=RESULTS_NAME,
    settings_keys=SETTINGS_KEYS,
    flags=FLAGS,
    required=("--data-root",),
    evaluate=evaluate,
    summary=summary,
    per_method=per_method,
    prepare=prepare,
)
get_args_parser = RETRIEVAL.get_args_parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    return RETRIEVAL.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
