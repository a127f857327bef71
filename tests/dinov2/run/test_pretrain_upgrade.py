"""Finished pretraining runs survive an upgrade of the code that retires a training key (as the
removed ``curriculum:`` list): the runs that branch off them are not refused as stale."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_experiment import write_random_tree

from dinov2.run.pretrain import pretrain
from utils.config import DEMO_EXPERIMENT, load_experiment
from utils.settings_record import read_settings, record_path, settings_digest

TINY_CONFIG = (
    Path(__file__).resolve().parents[3] / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
)
OVERRIDES = (
    f"pretrain.config_file={TINY_CONFIG}",
    "pretrain.epochs=2",
    "pretrain.switch_epoch=1",
    "pretrain.curriculum_epochs=1",
    "pretrain.overrides.train.batch_size_per_gpu=4",
    "pretrain.overrides.train.OFFICIAL_EPOCH_LENGTH=2",
    "pretrain.overrides.train.num_workers=0",
)


def _as_written_by_older_code(run_dir: Path, extra: dict) -> None:
    """The record with a setting today's code no longer records, and a training config that
    differs from today's (``.complete`` holds another digest)."""
    settings = {**read_settings(run_dir, "pretrain"), **extra}
    record = {"settings": settings, "digest": settings_digest(settings)}
    record_path(run_dir, "pretrain").write_text(json.dumps(record, indent=1) + "\n")
    (run_dir / ".complete").write_text("0123456789abcdef\n")


def test_a_retired_training_key_does_not_make_the_branching_run_stale(tmp_path: Path) -> None:
    overrides = [f"output_root={tmp_path}", *OVERRIDES]
    cfg = load_experiment(DEMO_EXPERIMENT, overrides)
    write_random_tree(Path(cfg.data.noisy_root), 4)
    write_random_tree(Path(cfg.data.denoised_root), 4)
    runs = Path(cfg.pretrain.runs_dir)
    torch.set_num_threads(1)
    for method in ("n2n_dinov2", "nc"):
        assert pretrain(str(DEMO_EXPERIMENT), method, overrides) == 0

    # The outputs of the older code: both records hold the retired key, and the NC run recorded
    # the digest of the N2N + DINOv2 record that held it.
    _as_written_by_older_code(runs / "n2n_dinov2", {"curriculum": []})
    source_digest = settings_digest(read_settings(runs / "n2n_dinov2", "pretrain"))
    _as_written_by_older_code(
        runs / "nc", {"curriculum": [], "branch source settings": source_digest}
    )
    nc_checkpoint = (runs / "nc" / "model_0000002.pth").read_bytes()

    for method in ("n2n_dinov2", "nc"):  # both re-entered (another config digest), neither stale
        assert pretrain(str(DEMO_EXPERIMENT), method, overrides) == 0
    assert settings_digest(read_settings(runs / "n2n_dinov2", "pretrain")) == source_digest
    assert (runs / "nc" / "model_0000002.pth").read_bytes() == nc_checkpoint  # nothing retrained
