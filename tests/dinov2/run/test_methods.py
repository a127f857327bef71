"""Experiment + method -> training config (the paper's settings), and a tiny end-to-end run of all
four methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image, ImageFilter

from dinov2.data.datasets import build_index
from dinov2.run.methods import METHODS, training_config_for
from dinov2.train.checkpointing import load_checkpoint_file
from dinov2.train.train import get_args_parser, main
from utils.config import ConfigError, load_experiment
from utils.embedded import mnist5k_arrays
from utils.noise import add_noise_uint8

REPO = Path(__file__).resolve().parents[3]
TINY_CONFIG = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
EXPERIMENTS = REPO / "configs" / "experiments"
PAPER_LAMBDA = {"gauss255": 1.1, "gauss100": 4.0, "shot1": 5.0, "speckle1.0": 2.0}
SAME_FAMILY = {"gauss50": 4.0, "shot10": 5.0, "shot3": 5.0, "speckle0.4": 2.0, "speckle0.7": 2.0}


@pytest.mark.parametrize("name", sorted({**PAPER_LAMBDA, **SAME_FAMILY}))
def test_imagenet100_experiments_give_the_paper_runs(name):
    exp = load_experiment(EXPERIMENTS / "imagenet100" / f"{name}.yaml")
    runs = {m: training_config_for(exp, m) for m in METHODS}
    for cfg in runs.values():
        assert (cfg.student.arch, cfg.student.patch_size) == ("vit_small", 16)
        assert (cfg.train.batch_size_per_gpu, cfg.train.OFFICIAL_EPOCH_LENGTH) == (40, 1250)
    noisy, denoised = exp.data.noisy_root, exp.data.denoised_root
    on_noisy = f"ImageNet:split=TRAIN:root={noisy}:extra={noisy}/extra"
    assert runs["dinov2"].train.dataset_path == on_noisy
    assert (
        runs["n2n_dinov2"].train.dataset_path
        == f"ImageNet:split=TRAIN:root={denoised}:extra={denoised}/extra"
    )
    assert runs["dinov2"].optim.epochs == runs["n2n_dinov2"].optim.epochs == 200
    assert list(runs["n2n_dinov2"].train.keep_checkpoint_epochs) == [140]
    switch = str(
        Path(exp.pretrain.runs_dir) / "n2n_dinov2" / "model_0175000.pth"
    )  # epoch 140 x 1250
    for m in ("nc", "nct"):
        assert (
            runs[m].optim.epochs == 60
            and runs[m].branch.checkpoint == switch
            and runs[m].branch.mode == "restart"
        )
    assert runs["nc"].train.dataset_path == on_noisy and runs["nc"].anchor.checkpoint == ""
    nct = runs["nct"]
    assert nct.train.dataset_path == f"Paired{on_noisy}:paired_root={denoised}"
    assert (
        nct.anchor.checkpoint == switch and nct.anchor.heads == "live"
    )  # IN-100: anchored at the epoch-140 branch
    assert nct.anchor.weight == {**PAPER_LAMBDA, **SAME_FAMILY}[name]
    assert len({cfg.train.output_dir for cfg in runs.values()}) == 4
    blur = {
        m: tuple(
            runs[m].crops[f"{c}_blur_p"]
            for c in ("global_crops_1", "global_crops_2", "local_crops")
        )
        for m in METHODS
    }
    assert blur["nct"] == (
        1.0,
        0.1,
        0.5,
    )  # the authors' paired NCT augmentation applies these directly
    assert (
        blur["nc"] == blur["dinov2"] == blur["n2n_dinov2"] == (0.0, 0.9, 0.5)
    )  # official effective values
    assert runs["nct"].crops.global_crops_2_solarize_p == 0.2


@pytest.mark.parametrize(("name", "weight"), [("gauss100", 2.0), ("gauss255", 1.6)])
def test_imagenet1k_experiments_give_the_paper_runs(name, weight):
    exp = load_experiment(EXPERIMENTS / "imagenet1k" / f"{name}.yaml")
    assert exp.pretrain.ngpus == 4
    base, nc, nct = (training_config_for(exp, m) for m in ("n2n_dinov2", "nc", "nct"))
    assert (base.student.arch, base.train.batch_size_per_gpu, base.train.OFFICIAL_EPOCH_LENGTH) == (
        "vit_base",
        128,
        2500,
    )
    # the switch checkpoint (epoch 30) and the anchor (the final one, epoch 100) are both kept
    assert base.optim.epochs == 100 and list(base.train.keep_checkpoint_epochs) == [30, 100]
    assert (
        base.optim.warmup_epochs == 10 and base.teacher.warmup_teacher_temp_epochs == 30
    )  # official defaults
    for cfg in (nc, nct):
        assert (
            cfg.optim.epochs == 70
            and cfg.optim.warmup_epochs == 5
            and cfg.teacher.warmup_teacher_temp_epochs == 15
        )
        assert cfg.branch.checkpoint.endswith("n2n_dinov2/model_0075000.pth")  # epoch 30 x 2500
    assert nct.anchor.weight == weight
    # NCT's frozen teacher is the N2N + DINOv2 run's final checkpoint (100 x 2500), not the branch
    assert nct.anchor.checkpoint == str(
        Path(exp.pretrain.runs_dir) / "n2n_dinov2" / "model_0250000.pth"
    )
    assert nc.anchor.checkpoint == ""
    for cfg in (base, nc, nct):  # the authors' ViT-B stochastic depth
        assert cfg.student.drop_path_rate == 0.1 and cfg.student.drop_path_uniform is True
    assert (
        nct.crops.global_crops_1_blur_p,
        nct.crops.global_crops_2_blur_p,
        nct.crops.local_crops_blur_p,
    ) == (
        1.0,
        0.1,
        0.5,
    )
    assert (nc.crops.global_crops_1_blur_p, nc.crops.global_crops_2_blur_p) == (0.0, 0.9)


@pytest.mark.parametrize("folder", ["imagenet100", "imagenet1k"])
def test_paper_configs_evaluate_with_the_papers_protocol(folder):
    for path in sorted((EXPERIMENTS / folder).glob("*.yaml")):
        ev = load_experiment(path).eval
        assert ev.linear.fast is False, path.name  # protocol mode: augmented, the official 52 heads
        assert list(ev.retrieval.datasets) == ["roxford5k", "rparis6k"], path.name
        if folder == "imagenet100":  # 10 x 1250 iterations at batch 128, every 5-epoch export
            assert (
                ev.linear.epochs,
                ev.linear.epoch_length,
                ev.linear.batch_size,
                ev.checkpoints,
            ) == (
                10,
                1250,
                128,
                "all",
            )
        else:  # 20 epochs at the authors' global batch 4 x 256, final export only
            assert (ev.linear.epochs, ev.linear.batch_size, ev.checkpoints) == (
                20,
                4 * 256,
                "final",
            ), path.name
    demo = load_experiment(EXPERIMENTS / "demo.yaml").eval
    assert (
        demo.linear.fast is True
        and demo.checkpoints == "final"
        and list(demo.retrieval.datasets) == ["mini"]
    )


def test_anchor_epoch_zero_means_the_switch_epoch_and_out_of_range_is_a_config_error():
    exp = load_experiment(EXPERIMENTS / "imagenet1k" / "gauss100.yaml", ["anchor.epoch=0"])
    assert training_config_for(exp, "nct").anchor.checkpoint.endswith(
        "n2n_dinov2/model_0075000.pth"
    )
    assert list(training_config_for(exp, "n2n_dinov2").train.keep_checkpoint_epochs) == [30]
    exp = load_experiment(EXPERIMENTS / "imagenet1k" / "gauss100.yaml", ["anchor.epoch=101"])
    with pytest.raises(ConfigError, match="anchor.epoch"):
        training_config_for(exp, "nct")


def test_changing_the_noise_is_one_edit():
    exp = load_experiment(EXPERIMENTS / "imagenet100" / "gauss100.yaml", ["noise.sigma_255=50"])
    nct = training_config_for(exp, "nct")
    assert exp.name == "imagenet100_gauss_50"
    assert (
        "imagenet100_gauss_50/" in nct.train.output_dir
        and "imagenet100_gauss_50:" in nct.train.dataset_path
    )


def test_unknown_method_and_late_switch_are_rejected():
    exp = load_experiment(EXPERIMENTS / "imagenet100" / "gauss100.yaml")
    with pytest.raises(ConfigError, match="valid: dinov2, n2n_dinov2, nc, nct"):
        training_config_for(exp, "ncx")
    with pytest.raises(ConfigError, match="pretrain.switch_epoch"):
        training_config_for(
            load_experiment(
                EXPERIMENTS / "imagenet100" / "gauss100.yaml", ["pretrain.switch_epoch=200"]
            ),
            "nc",
        )


# ---------------------------------------------------------------------------------- end to end
def _write_trees(exp, n_per_class: int = 6) -> None:
    """Noisy (gauss, the experiment's spec) and "denoised" (blurred noisy) trees of MNIST digits,
    indexed."""
    images, labels = mnist5k_arrays()
    rng = np.random.default_rng(0)
    noisy_root, denoised_root = Path(exp.data.noisy_root), Path(exp.data.denoised_root)
    for digit in range(2):
        for i, index in enumerate(np.flatnonzero(labels == digit)[:n_per_class]):
            noisy = add_noise_uint8(images[index], exp.noise.spec, rng)
            rel = Path("train") / f"digit{digit}" / f"{i}.png"
            for root in (noisy_root, denoised_root):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(noisy).save(noisy_root / rel)
            Image.fromarray(noisy).filter(ImageFilter.GaussianBlur(1.0)).save(denoised_root / rel)
    build_index(noisy_root)
    build_index(denoised_root)


def test_tiny_experiment_trains_dinov2_n2n_nc_and_nct_and_writes_four_teacher_checkpoints(tmp_path):
    exp = load_experiment(
        None,
        [
            "name=tiny",
            f"output_root={tmp_path}",
            "data.name=mnist",
            f"data.clean_root={tmp_path}/clean",
            f"pretrain.config_file={TINY_CONFIG}",
            "pretrain.epochs=3",
            "pretrain.switch_epoch=2",
            "pretrain.curriculum_epochs=1",
            "pretrain.overrides.train.batch_size_per_gpu=4",
            "pretrain.overrides.train.OFFICIAL_EPOCH_LENGTH=2",
            "pretrain.overrides.optim.warmup_epochs=1",
            "anchor.weight=2.0",
        ],
    )
    _write_trees(exp)
    for method in METHODS:  # in pipeline order: nc and nct branch off the n2n_dinov2 run
        cfg = training_config_for(exp, method)
        OmegaConf.save(cfg, tmp_path / f"{method}.yaml")
        out = cfg.train.output_dir
        summary = main(
            get_args_parser().parse_args(
                ["--config-file", str(tmp_path / f"{method}.yaml"), "--output-dir", out]
            )
        )
        last = summary["iteration"] - 1
        export = load_checkpoint_file(
            Path(out) / "eval" / f"training_{last}" / "teacher_checkpoint.pth"
        )
        assert "backbone.cls_token" in export["teacher"]
        assert ("anchor_ibot_loss" in summary["losses"]) == (method == "nct")
    assert (
        Path(exp.pretrain.runs_dir) / "n2n_dinov2" / "model_0000004.pth"
    ).is_file()  # the kept switch checkpoint
