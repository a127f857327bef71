"""Bad and awkward inputs over every stage, run as a user runs them (issue 15).

Each case runs a stage CLI (its ``main(argv)``, or a real subprocess where the entry point itself is
under test) on real files: a tiny experiment whose stages have finished (noise, Neighbor2Neighbor,
denoise, two pretraining runs, linear + kNN, report). Each asserts a non-zero exit, exactly one
``error:``/``usage`` line that names the key or file, no traceback, and that every file the user
has (clean tree, finished stages, checkpoints) is byte-identical afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}

TINY = """\
name: tiny
output_root: {out}
data: {{name: toy, clean_root: {clean}}}
noise: {{family: gauss, sigma_255: 50}}
pretrain:
  config_file: {repo}/dinov2/configs/train/vit_pico_cpu.yaml
  overrides:
    train: {{batch_size_per_gpu: 4, OFFICIAL_EPOCH_LENGTH: 2, checkpoint_period_iterations: 2,
             num_workers: 0}}
    evaluation: {{eval_period_iterations: 0}}
  epochs: 2
  switch_epoch: 1
  curriculum_epochs: 1
n2n: {{n_feature: 8, crop_size: 64, batch_size: 2, n_epoch: 1, n_samples_per_epoch: 4,
       val_photos: [coffee], val_size: 64, workers: 0, device: cpu}}
denoise: {{device: cpu}}
eval: {{resize_size: 32, crop_size: 32, batch_size: 8, num_workers: 0,
        linear: {{epochs: 1, batch_size: 4}}, knn: {{nb_knn: [1, 3]}},
        retrieval: {{mini_size: 32}}}}
"""
STEPS = [
    "noise",
    "n2n",
    "denoise",
    "pretrain:dinov2",
    "pretrain:n2n_dinov2",
    "pretrain:nc",
    "evaluate:dinov2:linear,knn",
    "evaluate:n2n_dinov2:linear,knn",
    "evaluate:nc:linear,knn",
    "report",
]  # what exps/linear_probe.sh runs


def _tree(root: Path) -> None:
    """Two classes of 32x32 RGB images, 4 train and 2 val each."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in range(2):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                img[8 * c : 8 * c + 16] += 150
                Image.fromarray(img).save(folder / f"{i}.png")


@dataclass
class Finished:
    """A finished tiny experiment: ``exp`` (YAML), ``root`` (everything the user has), ``run`` (run
    folder)."""

    root: Path
    exp: Path
    clean: Path
    out: Path
    run: Path
    noisy: Path
    denoised: Path


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    from dinov2.run.pipeline import run_steps

    root = tmp_path_factory.mktemp("user")
    clean, out = root / "clean", root / "out"
    _tree(clean)
    exp = root / "tiny.yaml"
    exp.write_text(TINY.format(out=out, clean=clean, repo=REPO))
    torch.set_num_threads(1)
    assert run_steps(str(exp), STEPS, log=lambda m: None) == 0
    run = out / "runs" / "tiny" / "gauss_50"
    return Finished(
        root, exp, clean, out, run, out / "data" / "toy_gauss_50", out / "data" / "toy_gauss_50_n2n"
    )


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (the user's files, byte for byte)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_main(module: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``module.main(argv)`` as the CLI runs it: ``(exit status, stderr)``; an escaping exception
    fails the test."""
    capsys.readouterr()
    try:
        rc = importlib.import_module(module).main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        rc = e.code if isinstance(e.code, int) else 1
    return rc, capsys.readouterr().err


def run_process(args: list[str], cwd: Path = REPO) -> tuple[int, str]:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=ONE_THREAD, capture_output=True, text=True, timeout=300
    )
    return proc.returncode, proc.stderr


def assert_refused(rc: int, stderr: str, *names: str) -> str:
    """Non-zero exit, no traceback, exactly one error line, naming every one of ``names``."""
    assert rc != 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:") or ": error:" in ln]
    assert len(lines) == 1, stderr[-3000:]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def check_case(finished: Finished, capsys, module: str, argv: list[str], *names: str) -> str:
    before = snapshot(finished.root)
    line = assert_refused(*run_main(module, argv, capsys), *names)
    assert snapshot(finished.root) == before
    return line


E = "--experiment"

# ---------------------------------------------------------------------------- 1: stale results
STALE = [
    (
        "n2n_epochs",
        "neighbor2neighbor.train",
        ["n2n.n_epoch=2"],
        ["n2n.n_epoch", "name", "--overwrite"],
    ),
    (
        "n2n_width",
        "neighbor2neighbor.train",
        ["n2n.n_feature=16"],
        ["n2n.n_feature", "--overwrite"],
    ),
    ("n2n_seed", "neighbor2neighbor.train", ["seed=3"], ["n2n.seed", "--overwrite"]),
    (
        "denoise_splits",
        "neighbor2neighbor.denoise",
        ["denoise.splits=[train]"],
        ["denoise.splits", "data.denoised_root"],
    ),
    (
        "noise_seed",
        "utils.generate_noise",
        ["noise.seed=7"],
        ["noise.seed", "data.noisy_root", "--overwrite"],
    ),
    (
        "pretrain_seed",
        "dinov2.run.pretrain",
        ["--method", "dinov2", "seed=3"],
        ["train.seed", "name", "--overwrite"],
    ),
    (
        "pretrain_arch",
        "dinov2.run.pretrain",
        ["--method", "dinov2", "pretrain.overrides.student.arch=vit_small"],
        ["student.arch", "--overwrite"],
    ),
    (
        "pretrain_lr",
        "dinov2.run.pretrain",
        ["--method", "n2n_dinov2", "pretrain.overrides.optim.base_lr=0.5"],
        ["optim.base_lr", "--overwrite"],
    ),
    (
        "linear_epochs",
        "dinov2.run.eval.linear",
        ["--method", "dinov2", "eval.linear.epochs=2"],
        ["--epochs", "--overwrite"],
    ),
    (
        "knn_temperature",
        "dinov2.run.eval.knn",
        ["--method", "dinov2", "eval.knn.temperature=0.5"],
        ["--temperature"],
    ),
    (
        "knn_k",
        "dinov2.run.evaluate",
        ["--method", "dinov2", "knn", "eval.knn.nb_knn=[2]"],
        ["--nb-knn"],
    ),
    (
        "report_clean_root",
        "dinov2.run.report",
        ["data.clean_root=/elsewhere"],
        ["data.clean_root", "--overwrite"],
    ),
]


@pytest.mark.parametrize(
    "module, overrides, names", [c[1:] for c in STALE], ids=[c[0] for c in STALE]
)
def test_a_rerun_with_changed_settings_is_refused_naming_the_key(
    finished, capsys, module, overrides, names
):
    argv = (
        [*overrides[:2], E, finished.exp, *overrides[2:]]
        if overrides[0] == "--method"
        else [E, finished.exp, *overrides]
    )
    check_case(finished, capsys, module, argv, *names)


def test_a_new_noise_level_runs_into_a_new_folder_and_the_report_names_it(finished, capsys):
    from utils.config import load_experiment

    before = snapshot(finished.root)
    new = load_experiment(finished.exp, ["noise.sigma_255=100"])
    assert (
        Path(new.run_dir) == finished.run.parent / "gauss_100"
        and Path(new.data.noisy_root) != finished.noisy
    )
    rc, err = run_main(
        "utils.generate_noise",
        [E, finished.exp, "noise.sigma_255=100", "data.splits=[val]"],
        capsys,
    )
    assert rc == 0, err
    assert {
        k: v for k, v in snapshot(finished.root).items() if k in before
    } == before  # old results untouched
    report = (finished.run / "report" / "results.md").read_text()
    assert report.startswith("Noise `gauss_50` on `toy`")
    shutil.rmtree(new.data.noisy_root)


def test_overwrite_redoes_a_stage_with_the_new_settings(finished, capsys, tmp_path):
    out = tmp_path / "n2n"
    base = [E, finished.exp, f"n2n.out_dir={out}"]
    assert run_main("neighbor2neighbor.train", base, capsys)[0] == 0
    assert_refused(
        *run_main("neighbor2neighbor.train", [*base, "n2n.n_feature=4"], capsys), "n2n.n_feature"
    )
    assert (
        run_main("neighbor2neighbor.train", [*base, "n2n.n_feature=4", "--overwrite"], capsys)[0]
        == 0
    )
    assert torch.load(out / "model_best.pth", weights_only=True)["arch"]["n_feature"] == 4


# -------------------------------------------------------------------------- 2, 3: non-finite models
@pytest.fixture(scope="module")
def nan_files(finished: Finished, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("nan")
    unet = torch.load(finished.run / "n2n" / "model_best.pth", weights_only=True)
    unet["model"] = {
        k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
        for k, v in unet["model"].items()
    }
    torch.save(unet, folder / "nan_unet.pth")
    teacher = next(
        (finished.run / "pretrain" / "dinov2" / "eval").glob("training_*/teacher_checkpoint.pth")
    )
    state = torch.load(teacher, weights_only=True)
    state["teacher"] = {
        k: v.float().fill_(float("nan")) if v.is_floating_point() else v
        for k, v in state["teacher"].items()
    }
    torch.save(state, folder / "nan_teacher.pth")
    (folder / "text.pth").write_text("this is not a checkpoint\n")
    torch.save(
        argparse.Namespace(model={"w": torch.zeros(1)}), folder / "foreign.pth"
    )  # a pickle of a foreign class
    data = teacher.read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 2])
    return {
        "unet": folder / "nan_unet.pth",
        "teacher": folder / "nan_teacher.pth",
        "text": folder / "text.pth",
        "truncated": folder / "truncated.pth",
        "foreign": folder / "foreign.pth",
    }


def test_n2n_stops_on_a_non_finite_loss_without_a_marker(finished, capsys, tmp_path):
    out = tmp_path / "n2n"
    argv = [
        E,
        finished.exp,
        f"n2n.out_dir={out}",
        "n2n.lr=1e8",
        "n2n.n_epoch=3",
        "n2n.n_samples_per_epoch=8",
    ]
    line = check_case(
        finished, capsys, "neighbor2neighbor.train", argv, "non-finite loss", "n2n.lr"
    )
    assert "epoch" in line
    assert not (out / "train_complete.json").exists()
    for path in out.glob("model_*.pth"):  # any checkpoint left is from a finished, finite epoch
        assert all(
            torch.isfinite(v).all() for v in torch.load(path, weights_only=True)["model"].values()
        )


def test_denoise_refuses_a_checkpoint_with_non_finite_weights(
    finished, capsys, nan_files, tmp_path
):
    dst = tmp_path / "den"
    argv = [E, finished.exp, "--checkpoint", nan_files["unet"], "--dst", dst]
    check_case(
        finished, capsys, "neighbor2neighbor.denoise", argv, str(nan_files["unet"]), "non-finite"
    )
    assert not dst.exists()


@pytest.mark.parametrize(
    "module", ["dinov2.run.eval.linear", "dinov2.run.eval.knn", "dinov2.run.eval.retrieval"]
)
def test_evaluations_refuse_non_finite_weights(
    finished, mini_root, capsys, nan_files, tmp_path, module
):
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    noisy = finished.noisy
    argv = [
        "--config-file",
        pico,
        "--pretrained-weights",
        nan_files["teacher"],
        "--output-dir",
        tmp_path / "ev",
    ]
    if module == "dinov2.run.eval.retrieval":
        argv += ["--data-root", mini_root, "--datasets", "mini"]
    else:
        argv += [
            "--train-dataset",
            f"ImageNet:split=TRAIN:root={noisy}:extra={noisy}/extra",
            "--val-dataset",
            f"ImageNet:split=VAL:root={noisy}:extra={noisy}/extra",
        ]
    check_case(finished, capsys, module, argv, str(nan_files["teacher"]), "non-finite weights")
    assert not (tmp_path / "ev").exists() or not any((tmp_path / "ev").glob("results_*"))


@pytest.mark.parametrize("kind", ["text", "truncated", "foreign"])
def test_a_file_that_is_not_a_checkpoint_says_so_without_suggesting_unsafe_loading(
    finished, capsys, nan_files, kind, tmp_path
):
    line = check_case(
        finished,
        capsys,
        "neighbor2neighbor.denoise",
        [E, finished.exp, "--checkpoint", nan_files[kind], "--dst", tmp_path / "den"],
        str(nan_files[kind]),
    )
    assert "weights_only" not in line
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    noisy = finished.noisy
    argv = [
        "--config-file",
        pico,
        "--pretrained-weights",
        nan_files[kind],
        "--train-dataset",
        f"ImageNet:split=TRAIN:root={noisy}:extra={noisy}/extra",
        "--val-dataset",
        f"ImageNet:split=VAL:root={noisy}:extra={noisy}/extra",
    ]
    assert "weights_only" not in check_case(
        finished, capsys, "dinov2.run.eval.knn", argv, str(nan_files[kind])
    )


# ----------------------------------------------------------------------- 4: zero or negative counts
ZERO = [
    ("neighbor2neighbor.train", "n2n.n_epoch=0"),
    ("neighbor2neighbor.train", "n2n.batch_size=0"),
    ("neighbor2neighbor.train", "n2n.workers=-1"),
    ("neighbor2neighbor.denoise", "denoise.batch_size=0"),
    ("utils.generate_noise", "noise.workers=-2"),
    ("dinov2.run.eval.linear", "eval.batch_size=-1"),
    ("dinov2.run.eval.knn", "eval.knn.nb_knn=[0]"),
    ("dinov2.run.pretrain", "pretrain.epochs=0"),
    ("dinov2.run.pretrain", "pretrain.curriculum_epochs=-3"),
]


@pytest.mark.parametrize("module, override", ZERO, ids=[o.split("=")[0] for _, o in ZERO])
def test_zero_or_negative_counts_are_config_errors_before_any_work(
    finished, capsys, module, override
):
    method = ["--method", "dinov2"] if module == "dinov2.run.pretrain" else []
    check_case(
        finished, capsys, module, [*method, E, finished.exp, override], override.split("=")[0]
    )


# ------------------------------------------------------------------- 6: denoise into its own source
def test_denoise_refuses_dst_inside_src_src_inside_dst_and_links_into_src(
    finished, capsys, tmp_path
):
    noisy = finished.noisy
    ckpt = finished.run / "n2n" / "model_best.pth"
    check_case(
        finished,
        capsys,
        "neighbor2neighbor.denoise",
        ["--src", noisy, "--dst", noisy / "den", "--checkpoint", ckpt],
        "inside",
        str(noisy),
    )
    check_case(
        finished,
        capsys,
        "neighbor2neighbor.denoise",
        ["--src", noisy / "train", "--dst", noisy, "--checkpoint", ckpt, "--overwrite"],
        "inside",
    )
    link = tmp_path / "link"
    link.symlink_to(noisy / "val")
    check_case(
        finished,
        capsys,
        "neighbor2neighbor.denoise",
        ["--src", noisy, "--dst", link / "den", "--checkpoint", ckpt],
        "inside",
    )
    assert not (noisy / "den").exists() and not (noisy / "val" / "den").exists()


# ------------------------------------------------------------------------ 8, 9: retrieval gnd files
class _Exploit:
    """Unpickling this calls ``os.system`` (what a malicious gnd file does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory) -> Path:
    """The mini retrieval set (skimage photos), built once."""
    from dinov2.eval.retrieval.mini_set import build_mini_set

    root = tmp_path_factory.mktemp("retrieval")
    build_mini_set(root, size=32)
    return root


def _gnd_case(
    mini_root: Path, finished: Finished, tmp_path: Path, content: bytes | None, obj: object = None
) -> tuple[Path, list]:
    root = tmp_path / "retrieval"
    shutil.copytree(mini_root, root)
    pkl = root / "mini" / "gnd_mini.pkl"
    pkl.write_bytes(content if content is not None else pickle.dumps(obj))
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    teacher = next(
        (finished.run / "pretrain" / "dinov2" / "eval").glob("training_*/teacher_checkpoint.pth")
    )
    argv = [
        "--config-file",
        pico,
        "--pretrained-weights",
        teacher,
        "--data-root",
        root,
        "--datasets",
        "mini",
        "--output-dir",
        tmp_path / "ev",
        "--resize-size",
        32,
        "--crop-size",
        32,
    ]
    return pkl, argv


def _mini_gnd(mini_root: Path) -> dict:
    with open(mini_root / "mini" / "gnd_mini.pkl", "rb") as f:
        return pickle.load(f)  # our own file, written by the mini-set builder


def test_a_malicious_gnd_pickle_is_refused_without_running_its_code(
    finished, mini_root, capsys, tmp_path
):
    marker = tmp_path / "pwned"
    pkl, argv = _gnd_case(
        mini_root,
        finished,
        tmp_path,
        None,
        {"imlist": ["a"], "qimlist": ["a"], "gnd": [_Exploit(marker)]},
    )
    check_case(
        finished,
        capsys,
        "dinov2.run.eval.retrieval",
        argv,
        str(pkl),
        "posix.system" if os.name != "nt" else "",
    )
    assert not marker.exists()
    assert (
        pickle.loads(pickle.dumps(_Exploit(tmp_path / "control"))) == 0
        and (tmp_path / "control").exists()
    )


def _bad_gnds(gnd: dict) -> dict[str, tuple[object, str]]:
    first = dict(gnd["gnd"][0])
    first.pop("hard")
    return {
        "a list": (list(gnd["imlist"]), "not the dict"),
        "no hard list": ({**gnd, "gnd": [first, *gnd["gnd"][1:]]}, "'hard'"),
        "empty imlist": ({**gnd, "imlist": []}, "'imlist'"),
        "fewer entries than qimlist": ({**gnd, "gnd": gnd["gnd"][:-1]}, "qimlist"),
    }


@pytest.mark.parametrize(
    "case", ["a list", "no hard list", "empty imlist", "fewer entries than qimlist", "text"]
)
def test_a_gnd_file_of_the_wrong_shape_is_one_line_naming_it(
    finished, mini_root, capsys, tmp_path, case
):
    if case == "text":
        pkl, argv = _gnd_case(mini_root, finished, tmp_path, b"imlist: a b c\n")
        expected = "not a pickle"
    else:
        obj, expected = _bad_gnds(_mini_gnd(mini_root))[case]
        pkl, argv = _gnd_case(mini_root, finished, tmp_path, None, obj)
    check_case(finished, capsys, "dinov2.run.eval.retrieval", argv, str(pkl), expected)


def test_a_gnd_file_with_numpy_arrays_still_loads(finished, mini_root, tmp_path):
    from dinov2.eval.retrieval.data import load_gnd

    gnd = _mini_gnd(mini_root)
    gnd["gnd"] = [{k: np.asarray(v) for k, v in g.items()} for g in gnd["gnd"]]
    pkl, _ = _gnd_case(mini_root, finished, tmp_path, None, gnd)
    cfg, _ = load_gnd(pkl.parent.parent, "mini")
    assert np.array_equal(cfg["gnd"][0]["easy"], gnd["gnd"][0]["easy"])


def test_the_retrieval_module_with_nothing_to_do_is_a_usage_error(finished):
    rc, err = run_process([sys.executable, "-m", "dinov2.run.eval.retrieval"])
    assert rc == 2 and "nothing to evaluate" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- 9: one-line errors
def _tree_with_corrupt_image(finished: Finished, tmp_path: Path) -> Path:
    root = tmp_path / "noisy"
    shutil.copytree(finished.noisy, root)
    shutil.rmtree(root / "extra", ignore_errors=True)
    (root / "train" / "class0" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_a_corrupt_image_with_loader_workers_names_the_file_in_n2n_training(
    finished, capsys, tmp_path
):
    root = _tree_with_corrupt_image(finished, tmp_path)
    argv = [
        E,
        finished.exp,
        f"n2n.train_root={root}/train",
        f"n2n.out_dir={tmp_path / 'n2n'}",
        "n2n.workers=1",
        "n2n.n_samples_per_epoch=16",
    ]
    check_case(
        finished, capsys, "neighbor2neighbor.train", argv, str(root / "train" / "class0" / "0.png")
    )


def test_a_corrupt_image_with_loader_workers_names_the_file_in_dinov2_training(
    finished, capsys, tmp_path
):
    from dinov2.data.datasets.extra import build_index

    root = _tree_with_corrupt_image(finished, tmp_path)
    build_index(root)
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    argv = [
        "--config-file",
        pico,
        "--output-dir",
        tmp_path / "run",
        f"train.dataset_path=ImageNet:split=TRAIN:root={root}:extra={root}/extra",
        "train.num_workers=1",
        "train.batch_size_per_gpu=8",
        "train.OFFICIAL_EPOCH_LENGTH=2",
        "optim.epochs=1",
        "optim.warmup_epochs=0",
    ]
    check_case(finished, capsys, "dinov2.run.train.train", argv, "0.png")


def test_a_stale_dataset_index_in_training_is_one_line(finished, capsys, tmp_path):
    from dinov2.data.datasets.extra import build_index

    root = tmp_path / "noisy"
    shutil.copytree(finished.noisy, root)
    build_index(root)
    shutil.copy(root / "train" / "class0" / "0.png", root / "train" / "class0" / "new.png")
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    argv = [
        "--config-file",
        pico,
        "--output-dir",
        tmp_path / "run",
        "train.num_workers=0",
        f"train.dataset_path=ImageNet:split=TRAIN:root={root}:extra={root}/extra",
    ]
    check_case(finished, capsys, "dinov2.run.train.train", argv, "process_metadata")


DEVICES = [
    ("neighbor2neighbor.train", "n2n.device=gpu", "n2n.device"),
    ("neighbor2neighbor.denoise", "denoise.device=tpu", "denoise.device"),
]
if not torch.cuda.is_available():
    DEVICES += [
        ("neighbor2neighbor.train", "n2n.device=cuda", "no CUDA"),
        ("neighbor2neighbor.denoise", "denoise.device=cuda:0", "no CUDA"),
    ]


@pytest.mark.parametrize("module, override, expected", DEVICES, ids=[o for _, o, _ in DEVICES])
def test_an_unavailable_or_unknown_device_is_one_line_naming_the_key(
    finished, capsys, tmp_path, module, override, expected
):
    elsewhere = (
        [f"n2n.out_dir={tmp_path / 'n2n'}"]
        if module == "neighbor2neighbor.train"
        else ["--dst", tmp_path / "den"]
    )
    check_case(
        finished,
        capsys,
        module,
        [E, finished.exp, override, *elsewhere],
        override.split("=")[0],
        expected,
    )


def test_an_unknown_training_device_is_one_line(finished, capsys, tmp_path):
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    argv = ["--config-file", pico, "--output-dir", tmp_path / "run", "train.device=tpu"]
    check_case(finished, capsys, "dinov2.run.train.train", argv, "train.device")


def test_a_yaml_syntax_error_gives_file_line_and_column(finished, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnoise:\n  family: gauss\n   sigma_255: [50\n")
    line = check_case(finished, capsys, "neighbor2neighbor.train", [E, bad], str(bad))
    assert "line 4" in line and "column" in line


NOISE = [
    ("noise.sigma_255=null", "noise.sigma_255"),
    ("noise.seed=-1", "noise.seed"),
    ("noise.family=gaus", "noise.family"),
    ("noise.spec=gauss_0", "noise.spec"),
]


@pytest.mark.parametrize("override, key", NOISE, ids=[k for _, k in NOISE])
def test_bad_noise_settings_name_the_key(finished, capsys, override, key):
    check_case(finished, capsys, "utils.generate_noise", [E, finished.exp, override], key)


def test_noise_spec_and_family_in_one_layer_are_refused_and_a_later_layer_wins(finished, capsys):
    from utils.config import load_experiment

    check_case(
        finished,
        capsys,
        "utils.generate_noise",
        [E, finished.exp, "noise.spec=shot_3", "noise.sigma_255=10"],
        "noise.spec",
        "noise.sigma_255",
    )
    assert (
        load_experiment(finished.exp, ["noise.spec=shot_3"]).noise.spec == "shot_3"
    )  # command line over the file
    assert (
        load_experiment(finished.exp, ["noise.sigma_255=12.5"]).noise.spec == "gauss_12.5"
    )  # one rule: numbers


def test_a_changed_switch_epoch_suggests_the_fix_that_works(finished, capsys, tmp_path):
    later = [
        "pretrain.epochs=4",
        "pretrain.switch_epoch=3",
    ]  # iteration 6: never kept by the finished run
    line = check_case(
        finished,
        capsys,
        "dinov2.run.pretrain",
        ["--method", "nc", E, finished.exp, *later],
        "pretrain.switch_epoch",
        "--method n2n_dinov2 --overwrite",
    )
    assert "model_0000006.pth" in line
    # ... and the fix works, on a copy of the user's tree (the finished runs above stay as they are)
    copy = tmp_path / "user"
    shutil.copytree(finished.root, copy, symlinks=True)
    exp = copy / "tiny.yaml"
    exp.write_text(finished.exp.read_text().replace(str(finished.root), str(copy)))
    assert (
        run_main(
            "dinov2.run.pretrain", ["--method", "n2n_dinov2", E, exp, *later, "--overwrite"], capsys
        )[0]
        == 0
    )
    rc, err = run_main(
        "dinov2.run.pretrain", ["--method", "nc", E, exp, *later, "--overwrite"], capsys
    )
    assert rc == 0, err[-2000:]


def test_a_typo_inside_an_open_mapping_is_refused_by_the_stage_that_reads_it(finished, capsys):
    check_case(
        finished,
        capsys,
        "dinov2.run.pretrain",
        ["--method", "dinov2", E, finished.exp, "pretrain.overrides.optim.base_lrr=0.1"],
        "optim.base_lrr",
    )


def test_process_metadata_refuses_a_dataset_without_images(finished, capsys, tmp_path):
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    check_case(finished, capsys, "process_metadata", [tmp_path / "empty"], str(tmp_path / "empty"))
    assert not (tmp_path / "empty" / "extra").exists()


def test_an_experiment_path_relative_to_the_caller_works_from_the_scripts(finished, tmp_path):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    shutil.copy(finished.exp, elsewhere / "mine.yaml")
    rc, err = run_process(
        ["sh", REPO / "exps" / "linear_probe_nct.sh", "no_such.yaml"], cwd=elsewhere
    )
    assert rc != 0 and "no_such.yaml" in err and "Traceback" not in err
    before = snapshot(finished.root)
    env_py = {**ONE_THREAD, "PY": sys.executable}
    proc = subprocess.run(
        ["sh", str(REPO / "exps" / "linear_probe.sh"), "mine.yaml"],
        cwd=elsewhere,
        env=env_py,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "finished run" in proc.stdout  # found the experiment and skipped the finished stages
    after = snapshot(
        finished.root
    )  # every finished output kept byte for byte (the report is redrawn)
    assert {k: after.get(k) for k in before if "/report/" not in k} == {
        k: v for k, v in before.items() if "/report/" not in k
    }


def test_every_case_above_runs_as_a_real_process_too(finished):
    """One refusal through ``python -m``: the exit status and the single line are the process's
    own."""
    before = snapshot(finished.root)
    rc, err = run_process(
        [sys.executable, "-m", "neighbor2neighbor.train", E, finished.exp, "n2n.n_epoch=2"]
    )
    assert_refused(rc, err, "n2n.n_epoch", "--overwrite")
    assert snapshot(finished.root) == before


def test_a_resume_with_another_architecture_is_one_line_and_keeps_the_run_config(finished, capsys):
    """Item 5 through the official training CLI: the finished run's config files are not
    rewritten."""
    run = finished.run / "pretrain" / "dinov2"
    argv = [
        "--config-file",
        run / "experiment_train.yaml",
        "--output-dir",
        run,
        "student.arch=vit_small",
        "optim.epochs=3",
    ]
    check_case(finished, capsys, "dinov2.run.train.train", argv, str(run), "does not fit")


def test_a_negative_count_in_the_training_overrides_is_refused_by_the_training_config(
    finished, capsys
):
    check_case(
        finished,
        capsys,
        "dinov2.run.pretrain",
        ["--method", "dinov2", E, finished.exp, "pretrain.overrides.train.num_workers=-1"],
        "train.num_workers",
    )


@pytest.mark.parametrize("kind", ["text", "truncated", "foreign"])
def test_training_from_a_file_that_is_not_a_checkpoint_is_one_line(
    finished, capsys, nan_files, tmp_path, kind
):
    pico = REPO / "dinov2" / "configs" / "train" / "vit_pico_cpu.yaml"
    noisy = finished.noisy
    argv = [
        "--config-file",
        pico,
        "--output-dir",
        tmp_path / "run",
        f"MODEL.WEIGHTS={nan_files[kind]}",
        f"train.dataset_path=ImageNet:split=TRAIN:root={noisy}:extra={noisy}/extra",
        "train.num_workers=0",
    ]
    line = check_case(
        finished,
        capsys,
        "dinov2.run.train.train",
        argv,
        str(nan_files[kind]),
        "not a PyTorch checkpoint",
    )
    assert "weights_only" not in line
