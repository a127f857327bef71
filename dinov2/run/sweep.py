"""Noise-level sweep of an experiment's backbones (stage 5, after the main evaluations).

    python -m dinov2.run.sweep --experiment configs/experiments/demo.yaml [--method nc ...]
    [key=value ...]

Every trained method (and the random-init and raw-pixel references) is evaluated on the *clean*
dataset noised on the fly at each level of ``eval.sweep.specs`` (default: clean plus the paper's
three levels of ``noise.family``): kNN top-1, and fast-mode linear top-1 when ``eval.sweep.linear``
(:mod:`dinov2.eval.sweep`). N2N + DINOv2 is evaluated on the noisy images too, without its denoiser,
which shows what the denoiser-free methods gain. Results: ``<run_dir>/eval/<method>/sweep.json``
(``{spec: {knn_top1, knn_k, linear_top1}}``), written after every level, so an interrupted sweep
resumes at its next level; the report turns them into a table and ``noise_sweep.png``.

The clean dataset is indexed into ``<output_root>/data/<data.name>_index`` (never into the user's
root).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from dinov2.data.transforms import make_classification_eval_transform
from dinov2.eval.data import load_dataset
from dinov2.eval.exports import newest_teacher_checkpoint
from dinov2.eval.setup import (
    build_model_for_eval,
    get_autocast_dtype,
    load_model_config,
)
from dinov2.eval.sweep import SWEEP_NAME, check_sweep_specs, default_sweep_specs, sweep_level
from dinov2.run.experiment import METHODS, clean_index_dir, method_paths
from dinov2.run.pretrain import ensure_index
from utils.atomic import atomic_write_text
from utils.cli import command
from utils.config import add_experiment_args, load_experiment
from utils.runtime import resolve_device
from utils.settings_record import check_settings, save_settings

log = logging.getLogger(__name__)

SWEPT = (
    "random_init",
    "pixels",
    *METHODS,
)  # the *_denoised references share their weights with these


def sweep_specs(cfg: DictConfig) -> list[str]:
    specs = cfg.eval.sweep.specs
    return check_sweep_specs(
        default_sweep_specs(cfg.noise.family) if specs is None else list(specs)
    )


def clean_index(cfg: DictConfig) -> Path:
    """Index of the clean root in a folder of ours (built or refreshed); returns that folder."""
    extra = clean_index_dir(cfg)
    ensure_index(Path(cfg.data.clean_root), extra)
    return extra


def final_backbone(cfg: DictConfig, method: str) -> dict | None:
    """``{method, config_file, pretrained_weights, eval_dir}`` of a method's final export (None: not
    trained yet)."""
    paths = method_paths(cfg, method)
    weights = newest_teacher_checkpoint(paths.run_dir)
    if weights is None:
        return None
    return {
        "method": method,
        "config_file": str(paths.run_dir / "config.yaml"),
        "pretrained_weights": str(weights),
        "eval_dir": paths.eval_dir,
    }


def sweep_method(
    cfg: DictConfig, run: dict, specs: Sequence[str], extra: Path, overwrite: bool = False
) -> dict:
    """Sweep one backbone (``run``: from :func:`final_backbone`); returns ``{spec: result}``."""
    out = Path(run["eval_dir"])
    linear_epochs = int(cfg.eval.linear.epochs) if cfg.eval.sweep.linear else 0
    settings = {
        "config_file": run["config_file"],
        "pretrained_weights": run["pretrained_weights"],
        "clean_root": str(cfg.data.clean_root),
        "linear_epochs": linear_epochs,
        "resize_size": int(cfg.eval.resize_size),
        "crop_size": int(cfg.eval.crop_size),
    }
    path = out / SWEEP_NAME
    check_settings(
        out,
        "sweep",
        settings,
        overwrite,
        what=f"the noise sweep of {run['method']}",
        has_outputs=path.is_file(),
    )
    results = json.loads(path.read_text()) if path.is_file() and not overwrite else {}
    todo = [s for s in specs if s not in results]
    if not todo:
        return results
    save_settings(out, "sweep", settings)
    device = resolve_device(cfg.eval.device, "eval.device")
    config = load_model_config(run["config_file"])
    model = build_model_for_eval(config, run["pretrained_weights"], device, run["config_file"])
    root = Path(cfg.data.clean_root)
    train_base = load_dataset(f"ImageNet:split=TRAIN:root={root}:extra={extra}")
    val_base = load_dataset(f"ImageNet:split=VAL:root={root}:extra={extra}")
    transform = make_classification_eval_transform(
        resize_size=cfg.eval.resize_size, crop_size=cfg.eval.crop_size
    )
    for spec in todo:
        results[spec] = sweep_level(
            model,
            train_base,
            val_base,
            transform,
            spec,
            ks=list(cfg.eval.knn.nb_knn),
            temperature=cfg.eval.knn.temperature,
            linear_epochs=linear_epochs,
            linear_batch_size=cfg.eval.linear.batch_size,
            batch_size=cfg.eval.batch_size,
            num_workers=cfg.eval.num_workers,
            device=device,
            autocast_dtype=get_autocast_dtype(config),
        )
        atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    return results


def run_sweep(
    cfg: DictConfig, methods: Sequence[str] | None = None, overwrite: bool = False
) -> dict[str, dict]:
    """Sweep every method with a final export (or the named ones: an error if one has none)."""
    specs = sweep_specs(cfg)
    runs = {m: final_backbone(cfg, m) for m in (methods or SWEPT)}
    missing = [m for m, r in runs.items() if r is None]
    if methods and missing:
        raise FileNotFoundError(
            f"no teacher export of method {missing[0]} under {cfg.pretrain.runs_dir}; "
            "train it first"
        )
    if not any(runs.values()):
        raise FileNotFoundError(
            f"no teacher export under {cfg.pretrain.runs_dir}; run the pretraining stage first"
        )
    extra = clean_index(cfg)
    return {
        m: sweep_method(cfg, r, specs, extra, overwrite) for m, r in runs.items() if r is not None
    }


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Noise-level sweep of an experiment's backbones")
    parser.add_argument(
        "--method", action="append", choices=SWEPT, help="methods to sweep (default: all present)"
    )
    parser.add_argument("--overwrite", action="store_true", help="redo sweeps whose results exist")
    add_experiment_args(parser, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    results = run_sweep(
        load_experiment(args.experiment, args.overrides), args.method, args.overwrite
    )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
