"""Weighted k-nearest-neighbour classification on L2-normalised CLS features (DINO/DINOv2 protocol).

For a test feature, the ``k`` most cosine-similar training features vote for their labels with
weight ``exp(sim / T)`` (T = 0.07); the class scores are the summed one-hot votes. (The official
DINOv2 code normalises the weights with a softmax over the top ``max(k)`` neighbours first, a
per-query constant that changes no ranking, hence no accuracy.) Top-1/top-5 are read from the
scores.

Python: :func:`knn_scores` / :func:`knn_accuracy` (tensors), :func:`run_knn` (backbone + datasets).
Command: ``python -m dinov2.run.eval.knn`` (:mod:`dinov2.run.eval.knn`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from dinov2.eval.features import extract_cls_features
from dinov2.eval.setup import check_finite_features
from utils.atomic import atomic_write_text

log = logging.getLogger(__name__)

NB_KNN = (10, 20, 100, 200)
TEMPERATURE = 0.07
RESULTS_NAME = "results_eval_knn.json"


def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    ks: Sequence[int] = NB_KNN,
    temperature: float = TEMPERATURE,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> dict[int, torch.Tensor]:
    """Class scores ``{k: [M, C]}`` of ``test_features [M, D]`` against ``train_features [N, D]``.

    Features are L2-normalised here; ``k`` larger than ``N`` uses all ``N`` neighbours.
    """
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    train = F.normalize(train_features.float(), dim=1)
    max_k = min(max(ks), train.shape[0])
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for start in range(0, test_features.shape[0], batch_size):
        test = F.normalize(test_features[start : start + batch_size].float(), dim=1)
        sims, idx = (test @ train.T).topk(max_k, dim=1, largest=True, sorted=True)  # [b, max_k]
        weights = (sims / temperature).exp()
        votes = F.one_hot(train_labels[idx], num_classes).float() * weights.unsqueeze(
            -1
        )  # [b, max_k, C]
        cumulative = votes.cumsum(dim=1)
        for k in ks:
            out[k].append(cumulative[:, min(k, max_k) - 1])
    return {k: torch.cat(v) for k, v in out.items()}


def topk_accuracy(
    scores: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """``{"top1": %, "top5": %}``: percent of rows whose label is among the ``k`` highest scores."""
    result = {}
    for k in topk:
        k_eff = min(k, scores.shape[1])
        hits = (scores.topk(k_eff, dim=1).indices == labels.unsqueeze(1)).any(dim=1)
        result[f"top{k}"] = 100.0 * hits.float().mean().item()
    return result


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    ks: Sequence[int] = NB_KNN,
    temperature: float = TEMPERATURE,
    num_classes: int | None = None,
) -> dict[str, dict[str, float]]:
    """``{"k=10": {"top1", "top5"}, ...}`` in percent."""
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    scores = knn_scores(train_features, train_labels, test_features, ks, temperature, num_classes)
    return {f"k={k}": topk_accuracy(s, test_labels) for k, s in scores.items()}


def run_knn(
    backbone: torch.nn.Module,
    train_dataset,
    val_dataset,
    *,
    ks: Sequence[int] = NB_KNN,
    temperature: float = TEMPERATURE,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    output_dir: str | os.PathLike | None = None,
    autocast_dtype: torch.dtype = torch.bfloat16,
) -> dict:
    """kNN accuracy of a frozen backbone; datasets yield ``(transformed image, label)``.

    Returns ``{"k=10": {...}, ..., "best": {"k", "top1", "top5"}}``; written to
    ``output_dir/results_eval_knn.json`` when given.
    """
    kw = dict(
        batch_size=batch_size, num_workers=num_workers, device=device, autocast_dtype=autocast_dtype
    )
    train_f, train_y = extract_cls_features(backbone, train_dataset, desc="knn train", **kw)
    check_finite_features(train_f, "the kNN training set")
    val_f, val_y = extract_cls_features(backbone, val_dataset, desc="knn val", **kw)
    check_finite_features(val_f, "the kNN validation set")
    results: dict = knn_accuracy(train_f, train_y, val_f, val_y, ks, temperature)
    best_k = max(results, key=lambda k: results[k]["top1"])
    results["best"] = {"k": int(best_k.split("=")[1]), **results[best_k]}
    if output_dir is not None:
        atomic_write_text(Path(output_dir) / RESULTS_NAME, json.dumps(results, indent=2) + "\n")
    log.info("kNN: %s", results["best"])
    return results
