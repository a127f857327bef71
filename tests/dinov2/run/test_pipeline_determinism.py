"""Two fresh runs of the pipeline in two different output folders write the same results.

Nothing a stage computes may depend on where it writes: not on the absolute paths (seeds, sort
keys), not on the order in which a file system lists a folder, not on what an earlier run left in
the process (both runs here share one process, as ``dinov2.run.pipeline`` runs the stages of one
experiment). Nor may it depend on whether the noisy images come from the noisy copy or from
``noise.at_load``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_experiment import write_pipeline_experiment

from dinov2.run.pipeline import run_steps

STEPS = [
    "noise",
    "n2n",
    "denoise",
    "pretrain:dinov2",
    "pretrain:n2n_dinov2",
    "pretrain:nc",
    "evaluate:dinov2:linear,knn",
]


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
    experiment = write_pipeline_experiment(tmp_path)
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


AT_LOAD_STEPS = [
    "noise",
    "n2n",
    "denoise",
    "pretrain:dinov2",
    "pretrain:n2n_dinov2",
    "pretrain:nct",
    "evaluate:dinov2:linear,knn",
    "evaluate:nct:knn",
    "report",
]


def test_noise_at_load_needs_no_noisy_copy_and_gives_the_results_of_the_noisy_copy(tmp_path):
    """``noise.at_load=true``: the noise step writes nothing, every stage reads the clean tree plus
    the noise, and the denoised tree, the weights, the losses and the evaluations are those of a
    run from the noisy copy (same seeds), NCT's paired noisy/denoised crops and the report
    included."""
    experiment = write_pipeline_experiment(tmp_path)
    copy, at_load = tmp_path / "copy", tmp_path / "at_load"
    assert run_steps(str(experiment), AT_LOAD_STEPS, [f"output_root={copy}"], print) == 0
    overrides = [f"output_root={at_load}", "noise.at_load=true"]
    assert run_steps(str(experiment), AT_LOAD_STEPS, overrides, print) == 0

    assert len(_files(copy / "data" / "toy_gauss_50", "*.png")) == 18
    assert not (at_load / "data" / "toy_gauss_50").exists()  # the noisy root
    fa = _files(copy / "data" / "toy_gauss_50_n2n", "*.png")
    fb = _files(at_load / "data" / "toy_gauss_50_n2n", "*.png")
    assert fa.keys() == fb.keys() and len(fa) == 18
    assert all(fa[k].read_bytes() == fb[k].read_bytes() for k in fa)

    run_a, run_b = copy / "runs" / "twin" / "gauss_50", at_load / "runs" / "twin" / "gauss_50"
    _assert_same_checkpoint(run_a / "n2n" / "model_last.pth", run_b / "n2n" / "model_last.pth")
    ckpts_a, ckpts_b = _files(run_a / "pretrain", "*.pth"), _files(run_b / "pretrain", "*.pth")
    assert ckpts_a.keys() == ckpts_b.keys()
    assert {Path(k).parts[0] for k in ckpts_a} >= {"dinov2", "n2n_dinov2", "nct"}
    for key in ckpts_a:
        _assert_same_checkpoint(ckpts_a[key], ckpts_b[key])
    nct_config = (run_b / "pretrain" / "nct" / "experiment_train.yaml").read_text()
    assert ":noise=gauss_50:noise_seed=42:paired_root=" in nct_config
    for key, metrics_a in _files(run_a / "pretrain", "training_metrics.json").items():
        timing = ("images_per_s",)
        lines_a = metrics_a.read_text().splitlines()
        lines_b = (run_b / "pretrain" / key).read_text().splitlines()
        assert [{k: v for k, v in json.loads(x).items() if k not in timing} for x in lines_a] == [
            {k: v for k, v in json.loads(x).items() if k not in timing} for x in lines_b
        ], key

    for method, name in [
        ("dinov2", "results_eval_linear.json"),
        ("dinov2", "results_eval_knn.json"),
        ("nct", "results_eval_knn.json"),
    ]:
        ra = json.loads((run_a / "eval" / method / name).read_text())
        rb = json.loads((run_b / "eval" / method / name).read_text())
        ra.pop("wall_s", None), rb.pop("wall_s", None)
        assert ra == rb, (method, name)
    table_a = (run_a / "report" / "results.md").read_text()
    assert table_a == (run_b / "report" / "results.md").read_text().replace(str(at_load), str(copy))
    grid_a, grid_b = run_a / "report" / "noise_grid.png", run_b / "report" / "noise_grid.png"
    assert grid_b.read_bytes() == grid_a.read_bytes()  # clean / noisy / denoised rows
