"""NCT waits for its anchor: the pretrain stage refuses to start NCT until the N2N + DINOv2
checkpoint at ``anchor.epoch`` exists (the paper's ImageNet-1k: the denoised run's final
checkpoint, later than the branch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_experiment import write_random_tree

from dinov2.run.methods import training_config_for
from dinov2.run.pretrain import pretrain
from dinov2.train.checkpointing import checkpoint_path
from utils.config import DEMO_EXPERIMENT, load_experiment


def test_nct_refuses_to_start_until_the_anchor_checkpoint_exists(tmp_path: Path) -> None:
    demo = load_experiment(DEMO_EXPERIMENT)
    final = int(
        demo.pretrain.epochs
    )  # anchor to the N2N + DINOv2 run's final epoch, as the paper's IN-1k configs
    assert final > demo.pretrain.switch_epoch
    overrides = [f"output_root={tmp_path}", f"anchor.epoch={final}"]
    cfg = load_experiment(DEMO_EXPERIMENT, overrides)
    write_random_tree(Path(cfg.data.noisy_root), 1)
    write_random_tree(Path(cfg.data.denoised_root), 1)
    source = Path(cfg.pretrain.runs_dir) / "n2n_dinov2"
    source.mkdir(parents=True)
    epoch_length = training_config_for(cfg, "nct").train.OFFICIAL_EPOCH_LENGTH
    checkpoint_path(source, cfg.pretrain.switch_epoch * epoch_length).write_bytes(
        b""
    )  # the branch point exists
    with pytest.raises(FileNotFoundError) as exc:
        pretrain(str(DEMO_EXPERIMENT), "nct", overrides)
    message = str(exc.value)
    assert "\n" not in message and f"anchor.epoch={final}" in message
    assert (
        str(checkpoint_path(source, final * epoch_length)) in message
        and "--method n2n_dinov2" in message
    )
    run_dir = Path(cfg.pretrain.runs_dir) / "nct"
    assert not run_dir.exists()  # nothing written before the anchor is there
