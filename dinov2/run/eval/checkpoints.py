"""Which teacher exports of an experiment's methods are evaluated, and where results go.

Paths come from :mod:`dinov2.run.experiment`. Evaluations use the newest export of a method's run
(``eval.checkpoints: final``) or every one (``all``), on the method's evaluation root.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from dinov2.eval.exports import newest_teacher_checkpoint, teacher_checkpoints
from dinov2.run.experiment import METHODS, REFERENCE_METHODS, method_paths
from utils.config import ConfigError

log = logging.getLogger(__name__)

CHECKPOINT_MODES = ("final", "all")


def checkpoints_to_evaluate(
    cfg: DictConfig, run_dir: Path, eval_dir: Path
) -> list[tuple[Path, Path]]:
    """``(teacher export, evaluation folder)`` pairs chosen by ``eval.checkpoints``.

    ``final``: the newest export, results in ``eval_dir``. ``all`` (the paper's ImageNet-100
    protocol, which probes every 5-epoch export): every export, results in
    ``eval_dir/training_<iteration>``, from which the report takes the final and the best value
    (:func:`dinov2.eval.checkpoint_series.final_and_best`).
    """
    mode = cfg.eval.checkpoints
    if mode not in CHECKPOINT_MODES:
        raise ConfigError(
            f"config key 'eval.checkpoints' must be one of {', '.join(CHECKPOINT_MODES)}, "
            f"got {mode!r}"
        )
    found = teacher_checkpoints(run_dir)
    if mode == "final":
        return [(found[-1][1], eval_dir)] if found else []
    return [(path, eval_dir / f"training_{iteration}") for iteration, path in found]


def reference_to_evaluate(run_dir: Path, eval_dir: Path) -> list[tuple[Path, Path]]:
    """A reference row's ``(export, evaluation folder)``: its one export (random init, or the
    tensor-less export of raw pixels), ``[]`` when ``python -m dinov2.run.reference`` wrote none."""
    export = newest_teacher_checkpoint(run_dir)
    return [(export, eval_dir)] if export is not None else []


def method_eval_args(cfg: DictConfig, methods: Sequence[str] | None = None) -> list[dict]:
    """``[{method, config_file, pretrained_weights, train_dataset_str, val_dataset_str, eval_dir,
    eval_root, noise}]``, one per evaluated export.

    ``methods=None``: every method with a checkpoint; a named method without one is an error.
    """
    out, n_not_applicable = [], 0
    for method in methods or METHODS:
        paths = method_paths(cfg, method)
        if method in REFERENCE_METHODS:  # one export (random init) or none (raw pixels), no series
            pairs = reference_to_evaluate(paths.run_dir, paths.eval_dir)
        else:
            pairs = checkpoints_to_evaluate(cfg, paths.run_dir, paths.eval_dir)
        if not pairs and method.startswith("pixels"):  # images too large for raw pixels: n/a
            log.info("%s: no raw-pixel reference for this experiment; skipped", method)
            n_not_applicable += 1
            continue
        if not pairs:
            if methods:
                stage = "reference" if method in REFERENCE_METHODS else "pretraining"
                raise FileNotFoundError(
                    f"no {paths.run_dir}/eval/training_*/teacher_checkpoint.pth for method "
                    f"{method}; run its {stage} stage first"
                )
            continue
        out.extend(
            {
                "method": method,
                "config_file": str(paths.run_dir / "config.yaml"),
                "pretrained_weights": str(ckpt),
                "train_dataset_str": paths.dataset_string("TRAIN"),
                "val_dataset_str": paths.dataset_string("VAL"),
                "eval_dir": eval_dir,
                "eval_root": paths.eval_root,
                "noise": None,
            }
            for ckpt, eval_dir in pairs
        )
    if not out and not n_not_applicable:
        raise FileNotFoundError(
            f"no teacher_checkpoint.pth under {cfg.pretrain.runs_dir}/*/eval/; "
            "run the pretraining stage first"
        )
    return out
