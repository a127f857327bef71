"""utils/generate_noise.py: determinism, resume after a kill, source safety, awkward inputs,
refusals, nothing written with ``noise.at_load``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.config import DEMO_EXPERIMENT
from utils.generate_noise import MANIFEST_NAME, image_rng, main
from utils.image_io import load_rgb_uint8
from utils.noise import add_noise_uint8


def make_tree(root: Path, n_per_class: int = 4, size: int = 32, classes=("a", "b")) -> Path:
    """A small clean ImageFolder tree of JPEGs and PNGs (random pixels, fixed seed)."""
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        for cls in classes:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
                img.save(root / split / cls / (f"{i:03d}.jpg" if i % 2 else f"{i:03d}.png"))
    (root / "labels.txt").write_text("a,first class\nb,second class\n")
    return root


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """``relative path -> (sha256, mtime_ns)`` of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def image_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def src(tmp_path) -> Path:
    return make_tree(tmp_path / "clean")


def test_output_is_byte_identical_with_one_and_two_workers(src, tmp_path):
    before = tree_digest(src)
    assert (
        run_cli("--src", src, "--dst", tmp_path / "w1", "--noise", "gauss_50", "--workers", 1) == 0
    )
    assert (
        run_cli("--src", src, "--dst", tmp_path / "w2", "--noise", "gauss_50", "--workers", 2) == 0
    )
    out1, out2 = image_bytes(tmp_path / "w1"), image_bytes(tmp_path / "w2")
    assert len(out1) == 16 and out1 == out2
    assert (tmp_path / "w1" / "labels.txt").read_text() == (src / "labels.txt").read_text()
    assert tree_digest(src) == before  # contents and mtimes of the source untouched


def test_each_output_is_the_noise_model_applied_with_the_per_image_seed(src, tmp_path):
    dst = tmp_path / "noisy"
    assert (
        run_cli("--src", src, "--dst", dst, "--noise", "shot_3", "--seed", 7, "--workers", 1) == 0
    )
    rel = "train/b/001.jpg"
    expected = add_noise_uint8(load_rgb_uint8(src / rel), "shot_3", image_rng(7, rel))
    np.testing.assert_array_equal(load_rgb_uint8(dst / "train/b/001.png"), expected)
    # Another seed gives other pixels: the seed really enters the per-image generator.
    other = add_noise_uint8(load_rgb_uint8(src / rel), "shot_3", image_rng(8, rel))
    assert not np.array_equal(other, expected)


def test_resume_after_kill_gives_the_bytes_of_an_uninterrupted_run(tmp_path):
    src = make_tree(
        tmp_path / "clean", n_per_class=75, size=48
    )  # 300 images: the run lasts long enough to kill
    before = tree_digest(src)
    assert (
        run_cli("--src", src, "--dst", tmp_path / "ref", "--noise", "speckle_0.4", "--workers", 1)
        == 0
    )
    dst = tmp_path / "killed"
    cmd = [sys.executable, "-m", "utils.generate_noise", "--src", str(src), "--dst", str(dst)]
    cmd += ["--noise", "speckle_0.4", "--workers", "2"]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and len(list(dst.rglob("*.png"))) < 20
        ):
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the CLI and its workers
        proc.wait()
    n_done = len(list(dst.rglob("*.png")))
    assert 0 < n_done < 300, f"the run was not interrupted mid-way ({n_done} files)"
    assert not json.loads((dst / MANIFEST_NAME).read_text())["complete"]
    assert run_cli("--src", src, "--dst", dst, "--noise", "speckle_0.4", "--workers", 2) == 0
    assert image_bytes(dst) == image_bytes(tmp_path / "ref")
    assert not list(dst.rglob("*.partial"))  # leftovers of the killed run are gone
    assert tree_digest(src) == before


def test_rerun_of_a_complete_tree_has_nothing_to_do(src, tmp_path, capsys):
    dst = tmp_path / "noisy"
    assert run_cli("--src", src, "--dst", dst, "--noise", "gauss_50", "--workers", 1) == 0
    first = capsys.readouterr().out
    assert "16 written, 0 skipped, 0 failed" in first and "images/s" in first
    mtimes = {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")}
    assert run_cli("--src", src, "--dst", dst, "--noise", "gauss_50", "--workers", 1) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.png")} == mtimes
    assert json.loads((dst / MANIFEST_NAME).read_text())["complete"] is True


def write_awkward_files(folder: Path) -> None:
    """Awkward but valid images, two broken ones and a text file, all in one class folder."""
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rng.integers(0, 65536, (32, 32), dtype=np.uint16)).save(folder / "gray16.png")
    Image.fromarray(np.concatenate([rgb, rgb[..., :1]], axis=2), mode="RGBA").save(
        folder / "rgba.png"
    )
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rgb).quantize(8).save(folder / "palette.png")
    Image.fromarray(rgb).save(folder / "good.jpg")
    jpeg = (folder / "good.jpg").read_bytes()
    scan = jpeg.index(b"\xff\xda") + 20  # just past the start-of-scan header
    (folder / "corrupt.jpg").write_bytes(
        jpeg[:scan] + rng.bytes(len(jpeg) - scan)
    )  # garbled scan data
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 3 // 4])  # truncated inside the scan data
    Image.fromarray(rgb).save(folder / "x.png")
    png = (folder / "x.png").read_bytes()
    (folder / "x.png").unlink()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "notes.txt").write_text("not an image\n")


def test_awkward_inputs_are_decoded_and_broken_ones_reported(tmp_path, caplog, capsys):
    src = tmp_path / "clean"
    (src / "train" / "c").mkdir(parents=True)
    write_awkward_files(src / "train" / "c")
    before = tree_digest(src)
    dst = tmp_path / "noisy"
    rc = run_cli(
        "--src", src, "--dst", dst, "--noise", "gauss_100", "--splits", "train", "--workers", 2
    )
    assert rc == 1  # broken files make the run fail, at the end
    assert "5 written, 0 skipped, 3 failed" in capsys.readouterr().out
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    for broken in ("corrupt.jpg", "cut.jpg", "truncated.png"):
        assert any(str(src / "train" / "c" / broken) in m for m in errors), (broken, errors)
    written = sorted(p.name for p in (dst / "train" / "c").iterdir())
    assert written == [
        "cmyk.png",
        "good.png",
        "gray16.png",
        "palette.png",
        "rgba.png",
    ]  # text file ignored
    for name in ("gray16.png", "rgba.png", "cmyk.jpg", "palette.png"):
        rel = f"train/c/{name}"
        expected = add_noise_uint8(load_rgb_uint8(src / rel), "gauss_100", image_rng(42, rel))
        np.testing.assert_array_equal(
            load_rgb_uint8(dst / "train/c" / Path(name).with_suffix(".png")), expected
        )
    assert tree_digest(src) == before
    caplog.clear()
    assert (
        run_cli(
            "--src", src, "--dst", dst, "--noise", "gauss_100", "--splits", "train", "--skip-bad"
        )
        == 0
    )
    assert "0 written, 5 skipped, 3 failed" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("corrupt.jpg" in m for m in warnings) and not any(
        r.levelname == "ERROR" for r in caplog.records
    )


@pytest.mark.parametrize("inside", [".", "sub/noisy"])
def test_dst_equal_to_or_inside_src_is_refused(src, inside, capsys):
    before = tree_digest(src)
    assert run_cli("--src", src, "--dst", src / inside, "--noise", "gauss_50") == 2
    assert "inside --src" in capsys.readouterr().err
    assert tree_digest(src) == before and not (src / "sub").exists()


def test_dst_made_with_another_spec_or_seed_is_refused_without_overwrite(src, tmp_path, capsys):
    dst = tmp_path / "noisy"
    assert run_cli("--src", src, "--dst", dst, "--noise", "gauss_50", "--workers", 1) == 0
    old = image_bytes(dst)
    for args, changed in (
        (("--noise", "gauss_100"), 'noise.spec="gauss_50", not "gauss_100"'),
        (("--noise", "gauss_50", "--seed", 1), "noise.seed=42, not 1"),
    ):
        capsys.readouterr()
        assert run_cli("--src", src, "--dst", dst, *args) == 2
        err = capsys.readouterr().err
        assert changed in err and "--overwrite" in err and "new --dst" in err
    assert image_bytes(dst) == old
    assert (
        run_cli("--src", src, "--dst", dst, "--noise", "gauss_100", "--workers", 1, "--overwrite")
        == 0
    )
    assert json.loads((dst / MANIFEST_NAME).read_text())["noise"] == "gauss_100"
    new = image_bytes(dst)
    assert new.keys() == old.keys() and all(new[k] != old[k] for k in old)


def test_foreign_non_empty_dst_is_refused(src, tmp_path, capsys):
    dst = tmp_path / "mine"
    dst.mkdir()
    (dst / "thesis.tex").write_text("precious")
    assert run_cli("--src", src, "--dst", dst, "--noise", "gauss_50") == 2
    assert MANIFEST_NAME in capsys.readouterr().err
    assert [p.name for p in dst.iterdir()] == ["thesis.tex"]


def test_bad_arguments_fail_with_one_line(src, tmp_path, capsys):
    assert run_cli("--src", src, "--dst", tmp_path / "n", "--noise", "gauss_-3") == 2
    assert "valid forms" in capsys.readouterr().err
    assert (
        run_cli("--src", src, "--dst", tmp_path / "n", "--noise", "gauss_5", "--splits", "test")
        == 2
    )
    assert "split folder" in capsys.readouterr().err
    (tmp_path / "empty" / "train").mkdir(parents=True)
    assert (
        run_cli(
            "--src",
            tmp_path / "empty",
            "--dst",
            tmp_path / "n",
            "--noise",
            "gauss_5",
            "--splits",
            "train",
        )
        == 2
    )
    assert "no image files" in capsys.readouterr().err
    assert run_cli("--experiment", DEMO_EXPERIMENT, "--src", src) == 2
    assert "cannot be used with --experiment" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_experiment_mode_derives_paths_and_saves_the_resolved_config(src, tmp_path):
    overrides = [f"output_root={tmp_path / 'out'}", "data.builder=null", f"data.clean_root={src}"]
    assert (
        run_cli("--experiment", DEMO_EXPERIMENT, *overrides, "noise.sigma_255=50", "--workers", 1)
        == 0
    )
    dst = tmp_path / "out" / "data" / "mnist5k_gauss_50"
    assert len(image_bytes(dst)) == 16
    assert json.loads((dst / MANIFEST_NAME).read_text())["noise"] == "gauss_50"
    assert "sigma_255: 50" in (dst / "config.yaml").read_text()


def test_with_noise_at_load_the_experiment_mode_writes_nothing_and_says_why(src, tmp_path, capsys):
    overrides = [f"output_root={tmp_path / 'out'}", "data.builder=null", f"data.clean_root={src}"]
    before = tree_digest(src)
    assert run_cli("--experiment", DEMO_EXPERIMENT, *overrides, "noise.at_load=true") == 0
    assert "noise.at_load is on; no noisy copy is written" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    assert tree_digest(src) == before
