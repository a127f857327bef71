"""Reference rows: the random-init export is the untrained teacher a training run of the same seed
starts from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "dinov2" / "train"))
from train_helpers import make_cfg  # noqa: E402

from dinov2.run.reference import export_random_init  # noqa: E402
from dinov2.run.report import add_gains, markdown_table  # noqa: E402
from dinov2.run.train.train import main as train_main  # noqa: E402
from dinov2.train.checkpointing import load_checkpoint_file  # noqa: E402


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    from dinov2.data.datasets import build_index

    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / "train" / f"c{c}").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                root / "train" / f"c{c}" / f"{i}.png"
            )
    build_index(root)
    return root


def _teacher(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint_file(path)["teacher"]


def test_random_init_export_equals_the_teacher_a_training_run_of_the_same_seed_starts_from(
    tmp_path, tree
):
    cfg = make_cfg(tmp_path / "unused", tree, "train.seed=3")
    export = _teacher(export_random_init(cfg, tmp_path / "random_init"))
    # One iteration at lr 0: the student does not move and the EMA teacher stays where it was,
    # so the run's export is its initial teacher, built by the official entry point from the same
    # seed.
    run = tmp_path / "run"
    train_main(
        [
            "--config-file",
            str(tmp_path / "random_init" / "config.yaml"),
            "--output-dir",
            str(run),
            "optim.epochs=1",
            "train.OFFICIAL_EPOCH_LENGTH=1",
            "optim.base_lr=0",
            "optim.min_lr=0",
            f"train.dataset_path=ImageNet:split=TRAIN:root={tree}",
            "train.batch_size_per_gpu=4",
        ]
    )
    trained = _teacher(run / "eval" / "training_0" / "teacher_checkpoint.pth")
    backbone = [k for k in export if k.startswith("backbone.")]
    assert backbone and set(backbone) == {k for k in trained if k.startswith("backbone.")}
    for k in backbone:  # equal up to the EMA's rounding (m * t + (1 - m) * t)
        torch.testing.assert_close(export[k], trained[k], rtol=1e-6, atol=1e-9, msg=k)
    other = _teacher(
        export_random_init(make_cfg(tmp_path / "unused", tree, "train.seed=4"), tmp_path / "other")
    )
    assert not torch.equal(other["backbone.cls_token"], export["backbone.cls_token"])


def test_gain_columns_subtract_the_reference_row_and_na_cells_print_as_text():
    rows = {
        "raw pixels": {"linear top-1": "n/a", "kNN top-1": "n/a"},
        "random init (untrained)": {"linear top-1": 40.0, "kNN top-1": 38.5},
        "DINOv2": {"linear top-1": 71.25, "kNN top-1": 60.0},
    }
    add_gains(rows, {"DINOv2": "random init (untrained)", "N2N + DINOv2": "missing row"})
    assert rows["DINOv2"]["gain kNN top-1"] == pytest.approx(21.5)
    assert rows["DINOv2"]["gain linear top-1"] == pytest.approx(31.25)
    table = markdown_table(rows)
    assert "| raw pixels | n/a | n/a | – | – |" in table
    assert "| DINOv2 | 71.25 | 60.00 | +21.50 | +31.25 |" in table
