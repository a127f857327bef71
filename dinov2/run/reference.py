"""The reference rows of every results table: what an untrained backbone and raw pixels score.

    python -m dinov2.run.reference --experiment configs/experiments/demo.yaml [key=value ...]

Writes, under ``pretrain.runs_dir``:

- ``random_init/``: the ``dinov2`` method's architecture and seed, untrained: ``config.yaml`` and
  ``eval/training_0/teacher_checkpoint.pth``, built exactly as the training entry point builds its
  model before the first step (same seed, teacher = copy of the student), so the evaluations treat
  it like any trained teacher export;
- ``pixels/``: ``config.yaml`` with ``student.arch: pixels``
  (:class:`dinov2.eval.pixels.PixelBackbone`) and an export without tensors, only when
  ``eval.crop_size`` is at most 64 px; otherwise the raw-pixel rows of the table are n/a.

Evaluate them as methods ``random_init``/``pixels`` (noisy data) and ``random_init_denoised``/
``pixels_denoised`` (denoised data, the reference of N2N + DINOv2). Idempotent: a finished export
with the same settings is kept; other settings are refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig

from dinov2.eval.pixels import MAX_PIXEL_SIDE, PIXELS_ARCH
from dinov2.run.experiment import method_paths
from dinov2.run.methods import training_config_for
from dinov2.train.checkpointing import export_teacher
from dinov2.train.parallel import full_state_dict
from dinov2.train.train import build_meta_arch, fix_random_seeds
from dinov2.utils.config import write_config
from utils.cli import command
from utils.config import add_experiment_args, load_experiment
from utils.settings_record import check_settings, save_settings, select_settings

logger = logging.getLogger("dinov2")

# What the untrained weights depend on: the architecture, the heads (they consume the RNG too) and
# the seed.
INIT_KEYS = ("student", "teacher", "dino", "ibot", "train.seed")


def export_random_init(train_cfg: DictConfig, run_dir: Path) -> Path:
    """``run_dir/eval/training_0/teacher_checkpoint.pth``: the teacher of ``train_cfg`` before any
    step."""
    fix_random_seeds(
        train_cfg.train.seed
    )  # the training entry point seeds with train.seed + rank (rank 0)
    model = build_meta_arch(train_cfg, torch.device("cpu"))
    write_config(train_cfg, run_dir)
    path = export_teacher(full_state_dict(model.teacher), run_dir, 0)
    assert path is not None  # one process: always the main one
    return path


def pixel_config(train_cfg: DictConfig, crop_size: int) -> DictConfig:
    """The training config with the raw-pixel "architecture" evaluated on ``crop_size`` crops."""
    cfg = train_cfg.copy()
    cfg.student.arch = PIXELS_ARCH
    cfg.crops.global_crops_size = crop_size
    return cfg


def write_references(cfg: DictConfig, overwrite: bool = False) -> list[Path]:
    """Write the reference runs of experiment ``cfg``; returns the folders written or kept."""
    train_cfg = training_config_for(cfg, "dinov2")
    random_dir = method_paths(cfg, "random_init").run_dir
    settings = select_settings(train_cfg, INIT_KEYS)
    done = (random_dir / "eval" / "training_0" / "teacher_checkpoint.pth").is_file()
    check_settings(
        random_dir,
        "reference",
        settings,
        overwrite,
        what="the random-init reference",
        has_outputs=done,
    )
    if not done or overwrite:
        path = export_random_init(train_cfg, random_dir)
        save_settings(random_dir, "reference", settings)
        logger.info("random-init reference exported: %s", path)
    written = [random_dir]
    crop = int(cfg.eval.crop_size)
    if crop <= MAX_PIXEL_SIDE:
        pixels_dir = method_paths(cfg, "pixels").run_dir
        write_config(pixel_config(train_cfg, crop), pixels_dir)
        # An export without tensors (raw pixels have no weights): the evaluations load it like any
        # teacher.
        if not (pixels_dir / "eval" / "training_0" / "teacher_checkpoint.pth").is_file():
            export_teacher({}, pixels_dir, 0)
        written.append(pixels_dir)
    else:
        logger.info(
            "raw-pixel reference: eval.crop_size %d > %d px; its rows are n/a", crop, MAX_PIXEL_SIDE
        )
    return written


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Reference rows: random-init export and raw-pixel config"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace reference runs made with other settings"
    )
    add_experiment_args(parser, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for d in write_references(load_experiment(args.experiment, args.overrides), args.overwrite):
        print(f"reference: {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
