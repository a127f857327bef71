"""Helpers of the training tests (importable: the test folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TINY_CONFIG = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"


def make_cfg(output_dir: Path, image_root: Path, *opts: str):
    """The tiny config (batch 4) for ``output_dir``, lr scaled, with ``key=value`` overrides."""
    from dinov2.utils.config import apply_scaling_rules_to_cfg, load_training_config

    cfg = load_training_config(
        TINY_CONFIG,
        [
            f"train.output_dir={output_dir}",
            f"train.dataset_path=ImageNet:split=TRAIN:root={image_root}",
            "train.batch_size_per_gpu=4",
            *opts,
        ],
    )
    return apply_scaling_rules_to_cfg(cfg)
