"""Instance retrieval of a frozen backbone on revisited Oxford/Paris (or the mini set).

Features: the L2-normalised final CLS token at Resize 256 + CenterCrop 224 (the paper's setting),
database and queries alike; whole query images by default (the paper), ``--crop-queries`` crops
them to their box first (the standard protocol). ``--noise SPEC`` adds noise on the fly (seed 42
for the database, 100 for the queries); ``--denoiser CKPT`` then denoises every image with a
Neighbor2Neighbor model (the N2N + DINOv2 variant). Results (percent): mAP and mP@1/5/10 for the
Easy, Medium and Hard settings, in ``OUTPUT_DIR/results_eval_retrieval.json``.

Command: ``python -m dinov2.run.eval.retrieval`` (:mod:`dinov2.run.eval.retrieval`).
"""

from __future__ import annotations

import json
import logging
import os
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
                f"{data_root}/{name}/gnd_{name}.pkl has a query without its 'bbx' box; "
                "drop --crop-queries"
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
