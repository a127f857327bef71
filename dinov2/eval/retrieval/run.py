"""Instance retrieval of a frozen backbone on revisited Oxford/Paris (or the mini set).

Features: the L2-normalised final CLS token at Resize 256 + CenterCrop 224 (the paper's setting),
database and queries alike; whole query images by default (the paper), ``--crop-queries`` crops
them to their box first (the standard protocol). ``--noise SPEC`` adds noise on the fly (seed 42
for the database, 100 for the queries); ``--denoiser CKPT`` then denoises every image with a
Neighbor2Neighbor model (the N2N + DINOv2 variant). Results (percent): mAP and mP@1/5/10 for the
Easy, Medium and Hard settings, in ``OUTPUT_DIR/results_eval_retrieval.json``.

    python -m dinov2.eval.retrieval --config-file RUN/config.yaml --pretrained-weights RUN/.../teacher_checkpoint.pth \\
        --data-root DATA --datasets roxford5k rparis6k --noise gauss_100 --output-dir OUT
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dinov2.eval.features import extract_cls_features
from dinov2.eval.retrieval.data import DB_NOISE_SEED, QUERY_NOISE_SEED, RetrievalImages, load_gnd
from dinov2.eval.retrieval.revisited import KAPPAS, evaluate_revisited, rank_by_similarity
from utils.atomic import atomic_write_text

log = logging.getLogger(__name__)
RESULTS_NAME = "results_eval_retrieval.json"
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


def retrieval_features(
    model: torch.nn.Module,
    images: RetrievalImages,
    batch_size: int,
    num_workers: int,
    device: torch.device | str,
    desc: str,
) -> np.ndarray:
    """L2-normalised CLS features ``[N, D]`` (float32 numpy) of a database or query set."""
    feats, _ = extract_cls_features(
        model, images, batch_size=batch_size, num_workers=num_workers, device=device, desc=desc
    )
    return F.normalize(feats, dim=1).numpy()


def run_retrieval(
    backbone: torch.nn.Module,
    data_root: str | os.PathLike,
    datasets: Sequence[str],
    transform: Callable,
    *,
    noise: str | None = None,
    denoiser: Callable[[np.ndarray], np.ndarray] | None = None,
    crop_queries: bool = False,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    output_dir: str | os.PathLike | None = None,
    kappas: Sequence[int] = KAPPAS,
) -> dict[str, dict[str, float]]:
    """``{dataset: {"mAP_easy", "mAP_medium", "mAP_hard", "mP@1_easy", ...}}`` in percent."""
    backbone = backbone.eval().to(device)
    if denoiser is not None:
        num_workers = 0  # the denoiser runs in the main process (it may hold a CUDA model)
    results = {}
    for name in datasets:
        cfg, jpg = load_gnd(data_root, name)
        if crop_queries and not all(
            isinstance(g, dict) and "bbx" in g for g in cfg["gnd"][: len(cfg["qimlist"])]
        ):
            raise ValueError(
                f"{data_root}/{name}/gnd_{name}.pkl has a query without its 'bbx' box; drop --crop-queries"
            )
        boxes = [g["bbx"] for g in cfg["gnd"]] if crop_queries else None
        common = dict(transform=transform, noise=noise, denoiser=denoiser)
        db = RetrievalImages(jpg, cfg["imlist"], noise_seed=DB_NOISE_SEED, **common)
        queries = RetrievalImages(
            jpg, cfg["qimlist"], boxes=boxes, noise_seed=QUERY_NOISE_SEED, **common
        )
        db_f = retrieval_features(backbone, db, batch_size, num_workers, device, f"{name} database")
        q_f = retrieval_features(
            backbone, queries, batch_size, num_workers, device, f"{name} queries"
        )
        ranks = rank_by_similarity(db_f, q_f)
        results[name] = evaluate_revisited(ranks, cfg["gnd"], kappas)
        log.info(
            "%s: mAP E %.2f M %.2f H %.2f",
            name,
            *(results[name][f"mAP_{s}"] for s in ("easy", "medium", "hard")),
        )
    if output_dir is not None:
        meta = {"noise": noise, "denoised": denoiser is not None, "crop_queries": crop_queries}
        atomic_write_text(
            Path(output_dir) / RESULTS_NAME,
            json.dumps({**results, "settings": meta}, indent=2) + "\n",
        )
    return results


def get_args_parser() -> argparse.ArgumentParser:
    from dinov2.eval.setup import get_args_parser as base_parser
    from utils.config import add_experiment_args

    parser = base_parser(description="Revisited Oxford/Paris retrieval of a frozen DINOv2 backbone")
    parser.add_argument(
        "--data-root", help="folder holding <dataset>/gnd_<dataset>.pkl and <dataset>/jpg/"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["roxford5k", "rparis6k"],
        help="e.g. roxford5k rparis6k mini",
    )
    parser.add_argument(
        "--noise", default=None, help="on-the-fly noise, e.g. gauss_100 (seeds: db 42, queries 100)"
    )
    parser.add_argument(
        "--denoiser", default=None, help="Neighbor2Neighbor checkpoint: denoise after the noise"
    )
    parser.add_argument(
        "--crop-queries", action="store_true", help="crop queries to their box (standard protocol)"
    )
    parser.add_argument("--resize-size", type=int, default=256)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="redo an evaluation whose results exist"
    )
    parser.add_argument(
        "--method", action="append", help="with --experiment: methods to evaluate (default all)"
    )
    add_experiment_args(parser)
    return parser


def experiment_runs(args: argparse.Namespace) -> list[argparse.Namespace]:
    """Per-method arguments from ``--experiment``: noisy queries/db (``noise.spec``), the N2N + DINOv2
    method denoises them with ``denoise.checkpoint``; the mini set is built first when listed."""
    from dinov2.eval.pipeline import method_eval_args
    from dinov2.eval.retrieval.mini_set import NAME, build_mini_set
    from utils.config import load_experiment

    cfg = load_experiment(args.experiment, args.overrides)
    ret = cfg.eval.retrieval
    if NAME in ret.datasets:
        build_mini_set(ret.data_root, size=ret.mini_size)
    runs = []
    for m in method_eval_args(cfg, args.method):
        run = argparse.Namespace(**vars(args))
        run.__dict__.update(
            config_file=m["config_file"],
            pretrained_weights=m["pretrained_weights"],
            output_dir=str(m["eval_dir"]),
            data_root=ret.data_root,
            datasets=list(ret.datasets),
            crop_queries=ret.crop_queries,
            noise=cfg.noise.spec,
            denoiser=cfg.denoise.checkpoint if m["method"] == "n2n_dinov2" else None,
            resize_size=cfg.eval.resize_size,
            crop_size=cfg.eval.crop_size,
            num_workers=cfg.eval.num_workers,
        )
        runs.append(run)
    return runs


def run_one(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from dinov2.data.transforms import make_classification_eval_transform
    from dinov2.eval.setup import default_device, setup_and_build_model

    if not args.data_root:
        raise ValueError("--data-root is required (or pass --experiment FILE)")
    device = default_device()
    model, _ = setup_and_build_model(args, device)
    denoiser = None
    if args.denoiser:
        from neighbor2neighbor.denoise import Denoiser

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


def main(argv: list[str] | None = None) -> int:
    from utils.config import error_line

    parser = get_args_parser()
    args = parser.parse_args(argv)
    if not args.experiment and not (args.pretrained_weights or args.data_root):
        parser.error(
            "nothing to evaluate: pass --experiment FILE, or --config-file, --pretrained-weights, "
            "--data-root and --output-dir"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from dinov2.eval.setup import prepare_output

        for run in experiment_runs(args) if args.experiment else [args]:
            if prepare_output(run, "retrieval", RESULTS_NAME, SETTINGS_KEYS, args.overwrite):
                continue
            for name, r in run_one(run).items():
                print(
                    f"{name}: mAP E {r['mAP_easy']:.2f} M {r['mAP_medium']:.2f} H {r['mAP_hard']:.2f}"
                )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
