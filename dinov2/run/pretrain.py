"""Stage 4 of the pipeline: pretrain one method of an experiment.

    python -m dinov2.run.pretrain --experiment EXPERIMENT.yaml --method nc [key=value ...]

Methods (see :mod:`dinov2.run.experiment`): ``dinov2`` (noisy images), ``n2n_dinov2`` (denoised
images), ``nc`` and ``nct`` (branch off ``n2n_dinov2`` at ``pretrain.switch_epoch``). The training
config comes from :func:`dinov2.run.methods.training_config_for`; it is written to
``<run dir>/experiment_train.yaml`` and trained by the official entry point
(``dinov2/run/train/train.py``) in ``pretrain.runs_dir/<method>``.

Idempotent: a finished run (marker ``.complete`` holding the digest of its training config) is
skipped; an interrupted run resumes from its newest checkpoint; more epochs train on from where the
run stopped. Any other change of the settings that made the run (noise, data, architecture, losses,
the branch source, ... recorded in ``.settings.pretrain.json``) is refused in one line before any
file is written: give the experiment a new ``name``, or pass ``--overwrite`` to delete the run and
retrain. Dataset indexes (``process_metadata.py``) of the roots the method reads are built or
refreshed first. With ``pretrain.ngpus > 1`` outside slurm/torchrun the
run is started through ``torchrun --nproc_per_node pretrain.ngpus``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from dinov2.data.datasets.extra import (
    SPLIT_DIRS,
    DatasetIndexError,
    build_index,
    check_fresh,
    default_extra,
)
from dinov2.run.experiment import DONE_MARKER, METHODS, method_paths
from dinov2.run.methods import (
    anchor_checkpoint,
    anchor_epoch,
    switch_checkpoint,
    training_config_for,
)
from dinov2.run.train.train import main as train_main
from utils.atomic import atomic_write_text
from utils.cli import command
from utils.config import add_experiment_args, load_experiment
from utils.settings_record import check_settings, read_settings, recorded_digest, save_settings

TRAIN_CONFIG_NAME = "experiment_train.yaml"
LAUNCHED_ENV = ("WORLD_SIZE", "SLURM_JOB_ID")  # already one process per GPU: train in this process


def ensure_index(root: Path, extra: Path | None = None) -> None:
    """Build or refresh ``extra`` (default ``root/extra``; the ``process_metadata.py`` index) for
    each split folder present. A root the user owns (the clean dataset) is indexed into a folder of
    ours instead."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset root {root} does not exist; run the stage that writes it first"
        )
    splits = [s for s, d in SPLIT_DIRS.items() if (root / d).is_dir()]
    if not splits:
        raise FileNotFoundError(
            f"dataset root {root} has no {' or '.join(SPLIT_DIRS.values())} folder"
        )
    try:
        for split in splits:
            check_fresh(root, extra or default_extra(root), split)
    except DatasetIndexError:
        build_index(root, extra)


def config_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Training keys that may change on a re-run without making the run stale: more epochs train on, and
# the kept switch checkpoint, the folder and the loader processes do not change the weights.
RESUMABLE_KEYS = (
    "optim.epochs",
    "train.keep_checkpoint_epochs",
    "train.output_dir",
    "train.num_workers",
)
RUN_MARKERS = (TRAIN_CONFIG_NAME, ".settings.pretrain.json", ".complete", "config.yaml")


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def pretrain_settings(cfg, method: str, train_cfg) -> dict:
    """What the run's weights depend on: the noise and dataset, every training key but
    :data:`RESUMABLE_KEYS`, and the recorded settings of the inputs made by other stages."""
    paths = method_paths(cfg, method)
    settings = {
        "noise.spec": cfg.noise.spec,
        "noise.seed": cfg.noise.seed,
        "data.name": cfg.data.name,
    }
    flat = _flatten(OmegaConf.to_container(train_cfg, resolve=True))
    settings.update({k: v for k, v in flat.items() if k not in RESUMABLE_KEYS})
    if Path(cfg.data.denoised_root) in (paths.train_root, paths.paired_root):
        settings["denoised tree settings"] = recorded_digest(cfg.data.denoised_root, "denoise")
    if paths.branch_from is not None:
        settings["branch source settings"] = recorded_digest(paths.branch_from, "pretrain")
    return settings


def clear_run(run_dir: Path) -> None:
    """``--overwrite``: delete a pretraining run folder (only one that this stage wrote)."""
    if not run_dir.exists():
        return
    if not any((run_dir / name).exists() for name in RUN_MARKERS):
        raise FileExistsError(
            f"{run_dir} is not a pretraining run folder (no {TRAIN_CONFIG_NAME}); not deleting it"
        )
    shutil.rmtree(run_dir)


def check_anchor_checkpoint(cfg, experiment: str | None, epoch_length: int) -> None:
    """NCT waits for its anchor: ``FileNotFoundError`` (one line) while the N2N + DINOv2 checkpoint
    at ``anchor.epoch`` does not exist yet."""
    anchor = anchor_checkpoint(cfg, epoch_length)
    if not anchor.is_file():
        raise FileNotFoundError(
            f"nct anchors to {anchor} (N2N + DINOv2 epoch anchor.epoch={anchor_epoch(cfg)}), "
            "which does not exist yet; train that run to it first: python -m dinov2.run.pretrain "
            f"--experiment {experiment} --method n2n_dinov2"
        )


def _train(config_file: Path, run_dir: Path, ngpus: int) -> int:
    args = ["--config-file", str(config_file), "--output-dir", str(run_dir)]
    if ngpus > 1 and not any(v in os.environ for v in LAUNCHED_ENV):
        script = Path(__file__).resolve().parent / "train" / "train.py"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={ngpus}",
            str(script),
            *args,
        ]
        return subprocess.call(cmd)
    return train_main(args)


def pretrain(
    experiment: str | None, method: str, overrides: Sequence[str] = (), overwrite: bool = False
) -> int:
    """Train ``method`` of the experiment unless it is finished; returns the exit status (0 =
    done)."""
    cfg = load_experiment(experiment, overrides)
    paths = method_paths(cfg, method)
    train_cfg = training_config_for(cfg, method)
    text = OmegaConf.to_yaml(train_cfg, resolve=True)
    digest = config_digest(text)
    settings = pretrain_settings(cfg, method, train_cfg)
    marker = paths.run_dir / DONE_MARKER
    if (
        paths.branch_from is not None
    ):  # first: a missing branch point is the cause of any other difference
        source = switch_checkpoint(cfg, method, train_cfg.train.OFFICIAL_EPOCH_LENGTH)
        if not source.is_file():
            done = (paths.branch_from / DONE_MARKER).is_file()
            redo = " --overwrite (retrains it, keeping that checkpoint)" if done else ""
            raise FileNotFoundError(
                f"{method} branches off {source} (epoch "
                f"pretrain.switch_epoch={cfg.pretrain.switch_epoch}), which does not exist; run: "
                f"python -m dinov2.run.pretrain --experiment {experiment} --method n2n_dinov2{redo}"
            )
    has_outputs = paths.run_dir.is_dir() and any(paths.run_dir.rglob("model_*.pth"))
    check_settings(
        paths.run_dir,
        "pretrain",
        settings,
        overwrite,
        what=f"the {method} pretraining run",
        has_outputs=has_outputs,
    )
    if not overwrite and marker.is_file() and marker.read_text().strip() == digest:
        print(f"pretrain {method}: finished run in {paths.run_dir}; skipped")
        return 0

    ensure_index(paths.train_root, paths.extra)  # also the evaluation root
    if paths.paired_root is not None:
        ensure_index(paths.paired_root)
    if (
        method == "nct"
    ):  # the frozen teacher may be a later checkpoint (IN-1k: the denoised run's final one)
        check_anchor_checkpoint(cfg, experiment, train_cfg.train.OFFICIAL_EPOCH_LENGTH)
    if overwrite:
        clear_run(paths.run_dir)
    # A setting this code no longer records (a training key since removed) stays in the record: its
    # digest, which the runs branching off this one and the evaluations compare, stays the same.
    retired = read_settings(paths.run_dir, "pretrain") or {}
    save_settings(paths.run_dir, "pretrain", {**retired, **settings})
    config_file = paths.run_dir / TRAIN_CONFIG_NAME
    atomic_write_text(config_file, text)
    rc = _train(config_file, paths.run_dir, int(cfg.pretrain.ngpus))
    if rc == 0:
        atomic_write_text(marker, digest + "\n")
    return rc


@command
def main(argv: Sequence[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description="Pretrain one method of an experiment (stage 4)")
    parser.add_argument(
        "--method", required=True, choices=METHODS, help="which model of the comparison"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the method's run folder and train it afresh "
        "(also when finished or of other settings)",
    )
    add_experiment_args(parser, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return pretrain(args.experiment, args.method, args.overrides, args.overwrite)


if __name__ == "__main__":
    sys.exit(main())
