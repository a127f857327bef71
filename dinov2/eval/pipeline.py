"""Official evaluation arguments of an experiment's methods (paths from :mod:`dinov2.run.experiment`).

A pretraining run writes ``RUN/config.yaml`` and ``RUN/eval/training_<iteration>/teacher_checkpoint.pth``
(the official layout); evaluations use the newest checkpoint (``eval.checkpoints: final``) or every one
(``all``) and the method's evaluation root.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

_TRAINING_DIR = re.compile(r"^training_(\d+)$")


def teacher_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every export ``run_dir/eval/training_<iteration>/teacher_checkpoint.pth``, oldest first."""
    found = []
    for d in (run_dir / "eval").glob("training_*"):
        m = _TRAINING_DIR.match(d.name)
        if m and (d / "teacher_checkpoint.pth").is_file():
            found.append((int(m[1]), d / "teacher_checkpoint.pth"))
    return sorted(found)


def newest_teacher_checkpoint(run_dir: Path) -> Path | None:
    """``run_dir/eval/training_<max iteration>/teacher_checkpoint.pth``, or None if there is none."""
    found = teacher_checkpoints(run_dir)
    return found[-1][1] if found else None


CHECKPOINT_MODES = ("final", "all")


def checkpoints_to_evaluate(
    cfg: DictConfig, run_dir: Path, eval_dir: Path
) -> list[tuple[Path, Path]]:
    """``(teacher export, evaluation folder)`` pairs chosen by ``eval.checkpoints``.

    ``final``: the newest export, results in ``eval_dir``. ``all`` (the paper's ImageNet-100 protocol, which
    probes every 5-epoch export): every export, results in ``eval_dir/training_<iteration>``, from which the
    report takes the final and the best value (:func:`dinov2.eval.report.final_and_best`).
    """
    from utils.config import ConfigError

    mode = cfg.eval.checkpoints
    if mode not in CHECKPOINT_MODES:
        raise ConfigError(
            f"config key 'eval.checkpoints' must be one of {', '.join(CHECKPOINT_MODES)}, got {mode!r}"
        )
    found = teacher_checkpoints(run_dir)
    if mode == "final":
        return [(found[-1][1], eval_dir)] if found else []
    return [(path, eval_dir / f"training_{iteration}") for iteration, path in found]


def reference_to_evaluate(run_dir: Path, eval_dir: Path) -> list[tuple[Path, Path]]:
    """A reference row's ``(export, evaluation folder)``: its one export (random init, or the tensor-less export
    of raw pixels), ``[]`` when ``python -m dinov2.run.reference`` wrote none."""
    export = newest_teacher_checkpoint(run_dir)
    return [(export, eval_dir)] if export is not None else []


def method_eval_args(cfg: DictConfig, methods: Sequence[str] | None = None) -> list[dict]:
    """``[{method, config_file, pretrained_weights, train_dataset_str, val_dataset_str, eval_dir, eval_root}]``.

    ``methods=None``: every method with a checkpoint; a named method without one is an error.
    """
    from dinov2.run.experiment import METHODS, REFERENCE_METHODS, method_paths

    out, n_not_applicable = [], 0
    for method in methods or METHODS:
        paths = method_paths(cfg, method)
        if (
            method in REFERENCE_METHODS
        ):  # one export (random init) or none (raw pixels), never a series
            pairs = reference_to_evaluate(paths.run_dir, paths.eval_dir)
        else:
            pairs = checkpoints_to_evaluate(cfg, paths.run_dir, paths.eval_dir)
        if not pairs and method.startswith(
            "pixels"
        ):  # images too large for raw pixels: the row is n/a
            logging.getLogger(__name__).info(
                "%s: no raw-pixel reference for this experiment; skipped", method
            )
            n_not_applicable += 1
            continue
        if not pairs:
            if methods:
                raise FileNotFoundError(
                    f"no {paths.run_dir}/eval/training_*/teacher_checkpoint.pth for method {method}; "
                    f"run its {'reference' if method in REFERENCE_METHODS else 'pretraining'} stage first"
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
            f"no teacher_checkpoint.pth under {cfg.pretrain.runs_dir}/*/eval/; run the pretraining stage first"
        )
    return out


def skip_finished(output_dir: str | Path | None, results_name: str, overwrite: bool) -> bool:
    """True when ``output_dir/results_name`` exists and ``overwrite`` is off (a finished evaluation is kept)."""
    if output_dir and (Path(output_dir) / results_name).is_file() and not overwrite:
        logging.getLogger(__name__).info(
            "%s exists; skipped (pass --overwrite to redo)", Path(output_dir) / results_name
        )
        return True
    return False
