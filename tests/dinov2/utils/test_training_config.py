"""Strict training configs: defaults hold every official key, typos fail with the closest key."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dinov2.configs import CONFIGS_DIR, dinov2_default_config, load_and_merge_config
from dinov2.utils.config import apply_scaling_rules_to_cfg, load_training_config
from utils.config import ConfigError

OFFICIAL_KEYS = [
    "MODEL.WEIGHTS",
    "compute_precision.grad_scaler",
    "compute_precision.student.backbone.sharding_strategy",
    "dino.koleo_loss_weight",
    "ibot.mask_ratio_min_max",
    "ibot.separate_head",
    "train.OFFICIAL_EPOCH_LENGTH",
    "train.centering",
    "train.cache_dataset",
    "train.saveckp_freq",
    "student.interpolate_offset",
    "teacher.warmup_teacher_temp_epochs",
    "optim.scaling_rule",
    "optim.patch_embed_lr_mult",
    "optim.adamw_beta2",
    "crops.local_crops_size",
    "evaluation.eval_period_iterations",
]


@pytest.mark.parametrize("key", OFFICIAL_KEYS)
def test_default_config_holds_official_key(key):
    assert OmegaConf.select(dinov2_default_config, key, default="MISSING") != "MISSING"


def test_default_blur_probabilities_are_the_official_effective_ones():
    crops = dinov2_default_config.crops
    assert (crops.global_crops_1_blur_p, crops.global_crops_2_blur_p, crops.local_crops_blur_p) == (
        0.0,
        0.9,
        0.5,
    )


@pytest.mark.parametrize("preset", sorted(p.stem for p in (CONFIGS_DIR / "train").glob("*.yaml")))
def test_every_preset_loads_strictly(preset):
    cfg = load_and_merge_config(f"train/{preset}")
    assert cfg.student.arch.startswith("vit_")


def test_typo_in_yaml_names_file_and_closest_key(tmp_path: Path):
    bad = tmp_path / "train.yaml"
    bad.write_text("optim:\n  warmup_epoch: 5\n")
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'optim.warmup_epoch' in .*train.yaml; "
        r"did you mean 'optim.warmup_epochs'",
    ):
        load_training_config(bad)


def test_typo_in_override_and_wrong_type_fail():
    with pytest.raises(ConfigError, match="did you mean 'teacher.teacher_temp'"):
        load_training_config(None, ["teacher.teacher_tmp=0.1"])
    with pytest.raises(ConfigError, match="'train.batch_size_per_gpu'.*expects an integer"):
        load_training_config(None, ["train.batch_size_per_gpu=big"])
    with pytest.raises(ConfigError, match="train.centering"):
        load_training_config(None, ["train.centering=sinkhorn"])


def test_full_official_style_yaml_loads_unchanged(tmp_path: Path):
    # A paper-style training YAML is a complete copy of the official defaults with some values
    # changed.
    full = OmegaConf.to_container(dinov2_default_config)
    for ours in ("autocast_dtype",):
        full["compute_precision"].pop(ours)
    full["train"]["batch_size_per_gpu"] = 40
    path = tmp_path / "paper.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(full)))
    assert load_training_config(path).train.batch_size_per_gpu == 40


def test_sqrt_wrt_1024_scaling_of_the_learning_rate():
    cfg = apply_scaling_rules_to_cfg(
        load_training_config(None, ["train.batch_size_per_gpu=256", "optim.base_lr=0.004"])
    )
    assert cfg.optim.lr == pytest.approx(0.004 * math.sqrt(256 / 1024))
