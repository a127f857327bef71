"""Two fresh runs of the pipeline in two different output folders write the same results.

Nothing a stage computes may depend on where it writes: not on the absolute paths (seeds, sort keys),
not on the order in which a file system lists a folder, not on what an earlier run left in the
process (both runs here share one process, as ``dinov2.run.pipeline`` runs the stages of one experiment).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dinov2.run.pipeline import run_steps

REPO = Path(__file__).resolve().parents[3]

EXPERIMENT = """\
name: twin
data: {{name: toy, clean_root: {clean}}}
noise: {{family: gauss, sigma_255: 50, workers: 2}}
pretrain:
  config_file: {repo}/dinov2/configs/train/vit_pico_small_images.yaml
  overrides:
    train: {{batch_size_per_gpu: 4, OFFICIAL_EPOCH_LENGTH: 2, checkpoint_period_iterations: 2, num_workers: 0}}
    evaluation: {{eval_period_iterations: 0}}
  epochs: 2
  switch_epoch: 1
  curriculum_epochs: 1
n2n: {{n_feature: 8, crop_size: 64, batch_size: 2, n_epoch: 1, n_samples_per_epoch: 4, val_photos: [coffee],
       val_size: 64, workers: 0}}
eval: {{resize_size: 32, crop_size: 32, batch_size: 8, num_workers: 0,
        linear: {{epochs: 1, batch_size: 4}}, knn: {{nb_knn: [1, 3]}}}}
"""
STEPS = [
    "noise",
    "n2n",
    "denoise",
    "pretrain:dinov2",
    "pretrain:n2n_dinov2",
    "pretrain:nc",
    "evaluate:dinov2:linear,knn",
]


def _tree(root: Path) -> None:
    """Two classes of 32x32 RGB images (bright squares vs dark discs), 6 train and 3 val each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, n in (("train", 6), ("val", 3)):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                cy, cx = rng.integers(10, 22, 2)
                shape = (
                    (abs(yy - cy) < 7) & (abs(xx - cx) < 7)
                    if c == 0
                    else (yy - cy) ** 2 + (xx - cx) ** 2 < 49
                )
                img = (
                    np.where(shape[..., None], 220 if c == 0 else 120, 30)
                    .astype(np.uint8)
                    .repeat(3, axis=2)
                )
                Image.fromarray(img).save(folder / f"{i}.png")


def _tensors(obj, prefix: str = ""):
    """``(key path, tensor)`` of every tensor in a nested checkpoint."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    ta = dict(_tensors(torch.load(a, map_location="cpu", weights_only=True)))
    tb = dict(_tensors(torch.load(b, map_location="cpu", weights_only=True)))
    assert ta.keys() == tb.keys(), a
    assert ta, a
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, (
        f"{a.name}: {len(differ)} tensors differ between the two folders, e.g. {differ[:3]}"
    )


def _files(root: Path, pattern: str) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob(pattern))}


def test_two_fresh_runs_in_two_output_folders_give_the_same_data_weights_and_results(tmp_path):
    clean = tmp_path / "clean"
    _tree(clean)
    experiment = tmp_path / "twin.yaml"
    experiment.write_text(EXPERIMENT.format(clean=clean, repo=REPO))
    roots = [
        tmp_path / "first_folder",
        tmp_path / "b",
    ]  # different lengths: paths must not reach any number
    for root in roots:
        assert run_steps(str(experiment), STEPS, [f"output_root={root}"], log=lambda _: None) == 0
    a, b = roots

    for tree in ("toy_gauss_50", "toy_gauss_50_n2n"):  # noisy and denoised images, byte for byte
        fa, fb = _files(a / "data" / tree, "*.png"), _files(b / "data" / tree, "*.png")
        assert fa.keys() == fb.keys() and len(fa) == 18
        assert all(fa[k].read_bytes() == fb[k].read_bytes() for k in fa), tree

    run_a, run_b = a / "runs" / "twin" / "gauss_50", b / "runs" / "twin" / "gauss_50"
    _assert_same_checkpoint(run_a / "n2n" / "model_last.pth", run_b / "n2n" / "model_last.pth")
    ckpts_a, ckpts_b = _files(run_a / "pretrain", "*.pth"), _files(run_b / "pretrain", "*.pth")
    assert ckpts_a.keys() == ckpts_b.keys()
    assert {Path(k).parts[0] for k in ckpts_a} >= {"dinov2", "n2n_dinov2", "nc"}
    for key in ckpts_a:
        _assert_same_checkpoint(ckpts_a[key], ckpts_b[key])
    for key, metrics_a in _files(run_a / "pretrain", "training_metrics.json").items():
        lines_a, lines_b = (
            metrics_a.read_text().splitlines(),
            (run_b / "pretrain" / key).read_text().splitlines(),
        )
        timing = ("images_per_s",)  # wall-clock speed is the only field allowed to differ
        assert [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines_a] == [
            {k: v for k, v in json.loads(x).items() if k not in timing} for x in lines_b
        ], key

    for name in ("results_eval_linear.json", "results_eval_knn.json"):
        ra = json.loads((run_a / "eval" / "dinov2" / name).read_text())
        rb = json.loads((run_b / "eval" / "dinov2" / name).read_text())
        ra.pop("wall_s", None), rb.pop("wall_s", None)
        assert ra == rb, name
