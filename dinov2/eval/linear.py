"""Linear probe of a frozen DINOv2 backbone: the official protocol and a fast cached-feature mode.

- **protocol** (default): every iteration runs the frozen backbone on an augmented batch
  (RandomResizedCrop + flip) and updates all heads of :mod:`dinov2.eval.linear_heads` at once;
  ``epochs × epoch_length`` iterations, checkpoints every ``save_checkpoint_frequency`` epochs
  (``model_linear.pth``, resumed automatically), validation every ``eval_period_iterations``.
- **fast** (``--cache-features``): features of the training images are extracted once without
  augmentation (Resize + CenterCrop) and the same heads are trained on the cached tensors.

Both choose the best head on the validation set and write ``results_eval_linear.json``
(``top1``/``top5`` of the best head and every head's accuracy) and ``metrics_linear.jsonl``.
Command: ``python dinov2/run/eval/linear.py`` (:mod:`dinov2.run.eval.linear`), official arguments.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dinov2.eval.features import extract_linear_features, linear_inputs
from dinov2.eval.linear_heads import (
    LEARNING_RATES,
    N_LAST_BLOCKS_LIST,
    best_classifier,
    evaluate_classifiers,
    make_optimizer,
    setup_linear_classifiers,
    train_step,
)
from dinov2.eval.setup import check_finite_features
from utils.atomic import atomic_torch_save, atomic_write_text
from utils.runtime import MetricsWriter, autocast

log = logging.getLogger(__name__)

RESULTS_NAME = "results_eval_linear.json"
METRICS_NAME = "metrics_linear.jsonl"
CHECKPOINT_NAME = "model_linear.pth"


def num_classes_of(dataset: Dataset) -> int:
    """Number of classes from the dataset's targets (``get_targets()``, ``targets`` or a
    TensorDataset)."""
    for ds in (dataset, getattr(dataset, "base", None)):
        if ds is None:
            continue
        if hasattr(ds, "get_targets"):
            return int(max(ds.get_targets())) + 1
        if hasattr(ds, "targets"):
            return int(max(ds.targets)) + 1
        if hasattr(ds, "tensors"):
            return int(ds.tensors[-1].max()) + 1
    raise ValueError("cannot infer the number of classes of the training dataset; pass num_classes")


def _feature_batches(
    cls: torch.Tensor,
    avg: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    order = torch.arange(labels.shape[0])
    if shuffle_seed is not None:
        order = torch.randperm(
            labels.shape[0], generator=torch.Generator().manual_seed(shuffle_seed)
        )
    for start in range(0, labels.shape[0], batch_size):
        idx = order[start : start + batch_size]
        yield cls[idx], avg[idx], labels[idx]


def _image_batches(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int,
    n_blocks: int,
    device: torch.device,
    autocast_dtype: torch.dtype,
    num_workers: int,
    shuffle_seed: int | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``(cls, avgpool, labels)`` batches computed by the frozen backbone on the fly."""
    generator = torch.Generator().manual_seed(shuffle_seed) if shuffle_seed is not None else None
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle_seed is not None,
        generator=generator,
        num_workers=num_workers,
        drop_last=drop_last,
    )
    for images, labels in loader:
        with torch.inference_mode(), autocast(device, autocast_dtype):
            cls, avg = linear_inputs(model, images.to(device, non_blocking=True), n_blocks)
        yield (
            cls.clone(),
            avg.clone(),
            torch.as_tensor(labels).to(device),
        )  # clone: leave inference mode


def _save_checkpoint(path: Path, classifiers, optimizer, scheduler, epoch: int) -> None:
    state = {
        "classifiers": classifiers.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
    }
    atomic_torch_save(state, path)


def _load_checkpoint(path: Path, classifiers, optimizer, scheduler) -> int:
    """Restore heads, optimizer and schedule from ``path``; returns the number of finished
    epochs."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    classifiers.load_state_dict(state["classifiers"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log.info("resumed the linear probe from %s (epoch %d)", path, state["epoch"])
    return int(state["epoch"])


def _epoch_batches(batches_fn, epoch: int, epoch_length: int, seed: int = 0):
    """``epoch_length`` batches of epoch ``epoch``, cycling through reshuffled passes if needed.

    The data order depends only on (seed, epoch, pass), so a resumed run sees the same batches."""
    n, sub = 0, 0
    while n < epoch_length:
        for batch in batches_fn(shuffle_seed=(seed * 100_003 + epoch) * 1000 + sub):
            yield batch
            n += 1
            if n == epoch_length:
                return
        sub += 1


def _train(
    classifiers,
    optimizer,
    scheduler,
    batches_fn,
    val_fn,
    *,
    epochs: int,
    epoch_length: int,
    start_epoch: int,
    metrics: MetricsWriter,
    checkpoint: Path | None,
    save_every: int | None,
    eval_period: int | None,
    seed: int = 0,
) -> None:
    """The training loop shared by both modes: epochs of ``epoch_length`` iterations."""
    iteration = start_epoch * epoch_length
    for epoch in range(start_epoch, epochs):
        bar = tqdm(
            _epoch_batches(batches_fn, epoch, epoch_length, seed),
            total=epoch_length,
            desc=f"linear epoch {epoch + 1}/{epochs}",
            leave=False,
        )
        for cls, avg, labels in bar:
            loss = train_step(classifiers, optimizer, scheduler, cls, avg, labels)
            iteration += 1
            if iteration % 10 == 0 or iteration == epoch_length * epochs:
                metrics.write(
                    {
                        "iteration": iteration,
                        "epoch": epoch,
                        "loss": loss,
                        "lr_max": max(g["lr"] for g in optimizer.param_groups),
                    }
                )
            if eval_period and iteration % eval_period == 0 and iteration < epoch_length * epochs:
                name, best = best_classifier(evaluate_classifiers(classifiers, val_fn()))
                metrics.write(
                    {
                        "iteration": iteration,
                        "val_best": name,
                        **{f"val_{k}": v for k, v in best.items()},
                    }
                )
        if checkpoint is not None and save_every and (epoch + 1) % save_every == 0:
            _save_checkpoint(checkpoint, classifiers, optimizer, scheduler, epoch + 1)


def fit_linear_heads(
    batches_fn,
    val_fn,
    embed_dim: int,
    num_classes: int,
    *,
    epochs: int,
    epoch_length: int,
    batch_size: int,
    learning_rates: Sequence[float] = LEARNING_RATES,
    n_last_blocks_list: Sequence[int] = N_LAST_BLOCKS_LIST,
    output_dir: Path | None = None,
    save_checkpoint_frequency: int | None = None,
    eval_period_iterations: int | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], str]:
    """Train every head on ``batches_fn(shuffle_seed)`` batches, evaluate on ``val_fn()`` batches.

    Batches are ``(cls [B, n_max, D], avgpool [B, D], labels [B])``. Returns the per-head
    validation accuracies and the name of the best head.
    """
    classifiers, groups = setup_linear_classifiers(
        embed_dim, n_last_blocks_list, learning_rates, batch_size, num_classes
    )
    classifiers.to(device)
    optimizer, scheduler = make_optimizer(groups, epochs * epoch_length)
    checkpoint = (
        output_dir / CHECKPOINT_NAME
        if output_dir is not None and save_checkpoint_frequency
        else None
    )
    start_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        start_epoch = _load_checkpoint(checkpoint, classifiers, optimizer, scheduler)
    _train(
        classifiers,
        optimizer,
        scheduler,
        batches_fn,
        val_fn,
        epochs=epochs,
        epoch_length=epoch_length,
        start_epoch=start_epoch,
        metrics=MetricsWriter(output_dir / METRICS_NAME if output_dir is not None else None),
        checkpoint=checkpoint,
        save_every=save_checkpoint_frequency,
        eval_period=eval_period_iterations,
        seed=seed,
    )
    per_head = evaluate_classifiers(classifiers, val_fn())
    return per_head, best_classifier(per_head)[0]


def probe_cached_features(
    train_cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    val_cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    epochs: int = 10,
    batch_size: int = 128,
    epoch_length: int | None = None,
    num_classes: int | None = None,
    output_dir: Path | None = None,
    device: torch.device | str = "cpu",
    **kwargs,
) -> tuple[dict[str, dict[str, float]], str]:
    """Fast mode on cached ``(cls [N, n_max, D], avgpool [N, D], labels [N])`` tensors (any source).

    ``epoch_length`` defaults to one pass (the last batch may be smaller)."""
    num_classes = num_classes or int(max(train_cache[2].max(), val_cache[2].max())) + 1
    train_cache = tuple(t.to(device) for t in train_cache)
    val_cache = tuple(t.to(device) for t in val_cache)
    epoch_length = epoch_length or -(-train_cache[2].shape[0] // batch_size)
    return fit_linear_heads(
        lambda shuffle_seed: _feature_batches(*train_cache, batch_size, shuffle_seed),
        lambda: _feature_batches(*val_cache, batch_size),
        train_cache[0].shape[-1],
        num_classes,
        epochs=epochs,
        epoch_length=epoch_length,
        batch_size=batch_size,
        output_dir=output_dir,
        device=device,
        **kwargs,
    )


def run_linear_probe(
    backbone: torch.nn.Module,
    train_dataset: Dataset,
    val_dataset: Dataset,
    *,
    fast: bool = False,
    epochs: int = 10,
    batch_size: int = 128,
    output_dir: str | os.PathLike | None = None,
    epoch_length: int | None = None,
    learning_rates: Sequence[float] = LEARNING_RATES,
    n_last_blocks_list: Sequence[int] = N_LAST_BLOCKS_LIST,
    num_classes: int | None = None,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    seed: int = 0,
    eval_period_iterations: int | None = None,
    save_checkpoint_frequency: int | None = None,
    autocast_dtype: torch.dtype = torch.bfloat16,
) -> dict:
    """Train all heads on the frozen ``backbone`` and evaluate them on ``val_dataset``.

    Datasets yield ``(image tensor [3, H, W], label)``; in protocol mode ``train_dataset`` carries
    the augmentation, in fast mode it should use the eval transform (features are cached once).
    ``epoch_length`` defaults to one pass over the training set. Returns the results
    dict that is also written to ``output_dir/results_eval_linear.json``.
    """
    torch.manual_seed(seed)
    device = torch.device(device)
    out = Path(output_dir) if output_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    n_blocks = max(n_last_blocks_list)
    backbone = backbone.eval().requires_grad_(False).to(device)
    start = time.perf_counter()
    feat_kw = dict(
        n_last_blocks=n_blocks,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        autocast_dtype=autocast_dtype,
    )
    head_kw = dict(
        learning_rates=learning_rates,
        n_last_blocks_list=n_last_blocks_list,
        output_dir=out,
        save_checkpoint_frequency=save_checkpoint_frequency,
        eval_period_iterations=eval_period_iterations,
        device=device,
        seed=seed,
    )
    val_cache = extract_linear_features(
        backbone, val_dataset, desc="linear val features", **feat_kw
    )
    check_finite_features(val_cache[0], "the linear-probe validation set")
    if fast:
        train_cache = extract_linear_features(
            backbone, train_dataset, desc="linear train features", **feat_kw
        )
        check_finite_features(train_cache[0], "the linear-probe training set")
        per_head, name = probe_cached_features(
            train_cache,
            val_cache,
            epochs=epochs,
            batch_size=batch_size,
            epoch_length=epoch_length,
            num_classes=num_classes,
            **head_kw,
        )
    else:
        num_classes = num_classes or num_classes_of(train_dataset)
        drop_last = len(train_dataset) > batch_size
        epoch_length = epoch_length or max(1, len(train_dataset) // batch_size)
        val_dev = tuple(t.to(device) for t in val_cache)
        per_head, name = fit_linear_heads(
            lambda shuffle_seed: _image_batches(
                backbone,
                train_dataset,
                batch_size,
                n_blocks,
                device,
                autocast_dtype,
                num_workers,
                shuffle_seed,
                drop_last,
            ),
            lambda: _feature_batches(*val_dev, batch_size),
            backbone.embed_dim,
            num_classes,
            epochs=epochs,
            epoch_length=epoch_length,
            batch_size=batch_size,
            **head_kw,
        )
    best = per_head[name]
    results = {
        "mode": "fast" if fast else "protocol",
        "top1": best["top1"],
        "top5": best["top5"],
        "best_classifier": {"name": name, **best},
        "batch_size": batch_size,
        "epochs": epochs,
        "n_train": len(train_dataset),
        "n_val": int(val_cache[2].shape[0]),
        "wall_s": time.perf_counter() - start,
        "classifiers": per_head,
    }
    if out is not None:
        atomic_write_text(out / RESULTS_NAME, json.dumps(results, indent=2) + "\n")
    log.info(
        "linear probe (%s): best %s top1 %.2f top5 %.2f",
        results["mode"],
        name,
        best["top1"],
        best["top5"],
    )
    return results
