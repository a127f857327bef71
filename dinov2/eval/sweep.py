"""Noise-level sweep: one frozen backbone evaluated on data noised on the fly at several levels.

For each level (a noise spec such as ``gauss_100``, or ``clean`` for no noise) both splits of a
clean dataset are noised on the fly (:class:`dinov2.eval.features.ImageDataset`, seeded per image
exactly as the main evaluations: 42 for the training split, 100 for the validation split), the
features are extracted once, and the level gets a kNN top-1 (best ``k``) and, optionally, a
fast-mode linear top-1 (cached features, the 26 heads of the official grid that read the last
block). ``clean`` gives the same numbers as evaluating the clean dataset without noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from dinov2.eval.data import TRAIN_NOISE_SEED, VAL_NOISE_SEED
from dinov2.eval.features import ImageDataset, extract_linear_features
from dinov2.eval.knn import NB_KNN, TEMPERATURE, knn_accuracy
from dinov2.eval.linear import probe_cached_features
from dinov2.eval.setup import check_finite_features
from utils.noise import PAPER_SPECS, parse_noise_spec

log = logging.getLogger(__name__)

CLEAN = "clean"
SWEEP_NAME = "sweep.json"  # {spec: {knn_top1, knn_k, linear_top1}} in a method's evaluation folder
# head initialisation and data order of every level's linear probe (as the linear command's default)
SWEEP_LINEAR_SEED = 0


def default_sweep_specs(family: str) -> list[str]:
    """``clean`` plus the paper's three levels of ``family`` (e.g. gauss: 50, 100, 255)."""
    return [CLEAN, *[s for s in PAPER_SPECS if s.startswith(f"{family}_")]]


def check_sweep_specs(specs: Sequence[str]) -> list[str]:
    """The specs in canonical form (``clean`` or a noise spec tag); a bad one is a ``ValueError``
    naming it."""
    if not specs:
        raise ValueError(
            "config key 'eval.sweep.specs' is empty; give levels such as [clean, gauss_100]"
        )
    return [CLEAN if s == CLEAN else parse_noise_spec(s).tag for s in specs]


def sweep_level(
    backbone: torch.nn.Module,
    train_base: Dataset,
    val_base: Dataset,
    transform,
    spec: str,
    *,
    ks: Sequence[int] = NB_KNN,
    temperature: float = TEMPERATURE,
    linear_epochs: int = 0,
    linear_batch_size: int = 128,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype = torch.bfloat16,
) -> dict[str, float]:
    """``{"knn_top1", "knn_k"[, "linear_top1"]}`` of ``backbone`` with both splits noised at
    ``spec``.

    ``train_base``/``val_base`` yield ``(PIL image, label)``; ``transform`` is the evaluation
    transform. ``linear_epochs`` 0 skips the linear probe.
    """
    noise = None if spec == CLEAN else spec
    train = ImageDataset(train_base, transform, noise, TRAIN_NOISE_SEED)
    val = ImageDataset(val_base, transform, noise, VAL_NOISE_SEED)
    # Last block only (the 26 heads with 1 block of the official grid): a level costs one short
    # probe, and the raw-pixel reference stays cheap (its 4-block inputs would be 5 x 3 x H x W
    # wide).
    kw = dict(
        n_last_blocks=1,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        autocast_dtype=autocast_dtype,
    )
    train_cache = extract_linear_features(backbone, train, desc=f"sweep {spec} train", **kw)
    val_cache = extract_linear_features(backbone, val, desc=f"sweep {spec} val", **kw)
    check_finite_features(val_cache[0], f"the sweep's validation set at {spec}")
    # kNN on the final CLS token (the last block's, normalised), as dinov2.eval.knn does with
    # model(x).
    knn = knn_accuracy(
        train_cache[0][:, -1], train_cache[2], val_cache[0][:, -1], val_cache[2], ks, temperature
    )
    best_k = max(knn, key=lambda k: knn[k]["top1"])
    result = {"knn_top1": knn[best_k]["top1"], "knn_k": int(best_k.split("=")[1])}
    if linear_epochs > 0:
        # The heads' initialisation draws from torch's global RNG: seed it here (in a forked scope)
        # so a level's probe does not depend on what ran before it in the process (other levels,
        # methods or pipeline stages, which a re-run skips) and leaves the caller's RNG as it was.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(
                SWEEP_LINEAR_SEED
            )  # CPU only: fork_rng(devices=[]) restores only it
            per_head, name = probe_cached_features(
                train_cache,
                val_cache,
                epochs=linear_epochs,
                n_last_blocks_list=[1],
                batch_size=linear_batch_size,
                device=device,
                seed=SWEEP_LINEAR_SEED,
            )
        result["linear_top1"] = per_head[name]["top1"]
    log.info("sweep %s: %s", spec, result)
    return result
