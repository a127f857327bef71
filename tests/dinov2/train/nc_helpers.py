"""Helpers of the noise-curriculum / NCT tests (importable: the test folder is on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from dinov2.train.checkpointing import load_checkpoint_file
from dinov2.train.train import METRICS_FILE, build_meta_arch, do_train, fix_random_seeds

FAST = (
    "train.OFFICIAL_EPOCH_LENGTH=2",
    "optim.warmup_epochs=1",
    "teacher.warmup_teacher_temp_epochs=1",
)


def make_blurred_copy(src_root: Path, dst_root: Path) -> Path:
    """A "denoised" tree: every image of ``src_root/train`` blurred, same relative path, indexed."""
    from dinov2.data.datasets import build_index

    for path in sorted((src_root / "train").rglob("*.png")):
        out = dst_root / path.relative_to(src_root)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).filter(ImageFilter.GaussianBlur(1.5)).save(out)
    build_index(dst_root)
    return dst_root


def train(cfg, resume: bool = True):
    """Seed as the CLI does, build the meta-architecture (with its anchor) and train.

    Returns ``(model, summary)``.

    Always one intra-op thread (also inside module-scoped fixtures, which run before the per-test
    thread fixture): runs compared bit for bit must use the same float reduction order.
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fix_random_seeds(cfg.train.seed)
        model = build_meta_arch(cfg, torch.device("cpu"))
        return model, do_train(cfg, model, resume=resume)
    finally:
        torch.set_num_threads(n_threads)


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(output_dir) / METRICS_FILE).read_text().splitlines()]


def model_state(path: Path, drop_prefix: str = "anchor.") -> dict[str, torch.Tensor]:
    """The ``model`` state of a full checkpoint, without this run's own anchor state."""
    return {
        k: v
        for k, v in load_checkpoint_file(path)["model"].items()
        if not k.startswith(drop_prefix)
    }


def assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
