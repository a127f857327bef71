"""Denoising tensors, images and trees: any size and channel count, idempotent trees, bad
checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from neighbor2neighbor.checkpoint import CheckpointError, load_unet, save_model
from neighbor2neighbor.denoise_tree import MARKER, denoise_tree
from neighbor2neighbor.denoiser import Denoiser, denoise_tensor, reflect_pad_to_multiple
from neighbor2neighbor.unet import UNet

# Subprocesses single-threaded too: OpenMP spinning on a shared 2-core machine slows them ~10x.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(n_feature=8).eval()


def test_denoise_tensor_returns_the_input_size_for_odd_and_tiny_images(model):
    for shape in [(3, 33, 47), (2, 3, 33, 47), (3, 5, 7), (1, 3, 1, 1), (3, 64, 32)]:
        out = denoise_tensor(model, torch.rand(shape))
        assert out.shape == shape
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_denoise_tensor_crops_back_the_unpadded_result(model):
    x = torch.rand(1, 3, 33, 47)
    with torch.no_grad():
        full = model(reflect_pad_to_multiple(x)).clamp(0, 1)
    assert torch.allclose(denoise_tensor(model, x), full[..., :33, :47])


def test_reflect_padding_reflects_repeatedly_for_images_smaller_than_the_pad():
    x = torch.arange(35.0).reshape(1, 1, 5, 7)
    padded = reflect_pad_to_multiple(x)
    assert padded.shape == (1, 1, 32, 32)
    expected = np.pad(x[0, 0].numpy(), ((0, 27), (0, 25)), mode="reflect")
    assert np.array_equal(padded[0, 0].numpy(), expected)


def test_grayscale_and_rgba_keep_their_channels(model):
    gray = torch.rand(1, 1, 20, 21)
    out_gray = denoise_tensor(model, gray)
    rgb_out = denoise_tensor(model, gray.expand(-1, 3, -1, -1))
    assert out_gray.shape == gray.shape and torch.allclose(out_gray, rgb_out.mean(1, keepdim=True))
    rgba = torch.rand(2, 4, 40, 33)
    out_rgba = denoise_tensor(model, rgba)
    assert out_rgba.shape == rgba.shape and torch.equal(out_rgba[:, 3], rgba[:, 3])
    assert torch.allclose(out_rgba[:, :3], denoise_tensor(model, rgba[:, :3]))


def test_denoise_image_keeps_shape_and_alpha_of_uint8_images(model):
    den = Denoiser(model, device="cpu")
    rng = np.random.default_rng(0)
    for shape in [(33, 47), (33, 47, 3), (9, 12, 4)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        out = den.denoise_image(image)
        assert out.shape == shape and out.dtype == np.uint8
    assert np.array_equal(den.denoise_image(image)[..., 3], image[..., 3])
    assert den.denoise_image(Image.fromarray(image[..., :3]).convert("P")).shape == (9, 12, 3)


def test_published_style_weights_load_strictly_and_model_files_round_trip(model, tmp_path):
    bare = {
        f"module.{k}": v for k, v in model.state_dict().items()
    }  # DataParallel-saved reference weights
    torch.save(bare, tmp_path / "published.pth")
    save_model(model, tmp_path / "ours.pth")
    x = torch.rand(1, 3, 32, 32)
    for name in ("published.pth", "ours.pth"):
        loaded = load_unet(tmp_path / name)
        assert loaded.n_feature == 8
        assert torch.equal(denoise_tensor(loaded, x), denoise_tensor(model, x))


def test_corrupt_or_foreign_checkpoints_give_a_one_line_error_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    foreign = tmp_path / "resnet.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), foreign)
    truncated = tmp_path / "truncated.pth"
    torch.save(UNet(n_feature=8).state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    for path in (corrupt, foreign, truncated, tmp_path / "missing.pth"):
        with pytest.raises(CheckpointError) as info:
            load_unet(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def write_tree(root):
    rng = np.random.default_rng(0)
    (root / "train" / "a").mkdir(parents=True)
    (root / "val" / "b").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(
        root / "train" / "a" / "rgb.png"
    )
    Image.fromarray(rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)).save(
        root / "train" / "a" / "q.jpg"
    )
    Image.fromarray(rng.integers(0, 256, (20, 9), dtype=np.uint8)).save(
        root / "train" / "a" / "gray.png"
    )
    Image.fromarray(rng.integers(0, 256, (40, 70, 4), dtype=np.uint8)).save(
        root / "val" / "b" / "rgba.png"
    )


def test_denoise_tree_writes_rgb_png_at_the_same_paths_and_resumes_identically(model, tmp_path):
    src, dst = tmp_path / "noisy", tmp_path / "denoised"
    write_tree(src)
    den = Denoiser(model, device="cpu")
    summary = denoise_tree(den, src, dst, splits=["train", "val"], batch_size=2)
    outputs = {p.relative_to(dst).as_posix() for p in dst.rglob("*.png")}
    assert outputs == {"train/a/rgb.png", "train/a/q.png", "train/a/gray.png", "val/b/rgba.png"}
    assert summary.n_written == 4 and (dst / MARKER).is_file()
    for rel, size in [
        ("train/a/rgb.png", (47, 33)),
        ("train/a/gray.png", (9, 20)),
        ("val/b/rgba.png", (70, 40)),
    ]:
        with Image.open(dst / rel) as img:
            assert img.mode == "RGB" and img.size == size
    before = (dst / "train/a/q.png").read_bytes()
    assert denoise_tree(
        den, src, dst, splits=["train", "val"]
    ).skipped_complete  # finished: skips itself
    (dst / MARKER).unlink()
    (dst / "train/a/q.png").unlink()  # an interrupted run: one output missing
    resumed = denoise_tree(den, src, dst, splits=["train", "val"], batch_size=2)
    assert resumed.n_written == 1 and (dst / "train/a/q.png").read_bytes() == before
    assert denoise_tree(den, src, dst, splits=["train", "val"], overwrite=True).n_written == 4


def test_denoise_cli_denoises_a_tree_and_rejects_a_bad_checkpoint_in_one_line(model, tmp_path):
    src, dst = tmp_path / "noisy", tmp_path / "out"
    write_tree(src)
    save_model(model, tmp_path / "model.pth")
    base = [
        sys.executable,
        "-m",
        "neighbor2neighbor.denoise",
        "--src",
        str(src),
        "--dst",
        str(dst),
        "--device",
        "cpu",
    ]
    ok = subprocess.run(
        [*base, "--checkpoint", str(tmp_path / "model.pth")],
        capture_output=True,
        text=True,
        timeout=120,
        env=ONE_THREAD,
    )
    assert ok.returncode == 0, ok.stderr
    assert "4 images written" in ok.stdout and "images/s" in ok.stdout
    assert len(list(dst.rglob("*.png"))) == 4 and (dst / "denoise_config.yaml").is_file()
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    bad = subprocess.run(
        [*base, "--checkpoint", str(tmp_path / "bad.pth"), "--overwrite"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ONE_THREAD,
    )
    assert bad.returncode == 2  # an input error (utils.cli)
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: cannot read checkpoint {tmp_path / 'bad.pth'}")
    )
