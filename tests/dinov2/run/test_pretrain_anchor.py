"""NCT waits for its anchor: the pretrain stage refuses to start NCT until the N2N + DINOv2 checkpoint at
``nct.anchor_epoch`` exists (the paper's ImageNet-1k: the denoised run's final checkpoint, later than the branch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinov2.run.pretrain import pretrain
from dinov2.train.curriculum import checkpoint_path
from utils.config import DEMO_EXPERIMENT, load_experiment


def _tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / "0.png")


def test_nct_refuses_to_start_until_the_anchor_checkpoint_exists(tmp_path: Path) -> None:
    overrides = [f"output_root={tmp_path}", "nct.anchor_epoch=6"]  # demo: switch epoch 4, final epoch 6
    cfg = load_experiment(DEMO_EXPERIMENT, overrides)
    _tree(Path(cfg.data.noisy_root))
    _tree(Path(cfg.data.denoised_root))
    source = Path(cfg.pretrain.runs_dir) / "n2n_dinov2"
    source.mkdir(parents=True)
    epoch_length = 25  # the demo's OFFICIAL_EPOCH_LENGTH
    checkpoint_path(source, 4 * epoch_length).write_bytes(b"")  # the branch point exists, the anchor not yet
    with pytest.raises(FileNotFoundError) as exc:
        pretrain(str(DEMO_EXPERIMENT), "nct", overrides)
    message = str(exc.value)
    assert "\n" not in message and "nct.anchor_epoch=6" in message
    assert str(checkpoint_path(source, 6 * epoch_length)) in message and "--method n2n_dinov2" in message
    run_dir = Path(cfg.pretrain.runs_dir) / "nct"
    assert not run_dir.exists()  # nothing written before the anchor is there
