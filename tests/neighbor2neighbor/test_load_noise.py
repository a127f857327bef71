"""Neighbor2Neighbor training and denoising from a clean tree plus the noise at load time give what
they give from the noisy tree ``utils.generate_noise`` writes, which then need not exist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neighbor2neighbor.data import NoisyCropDataset, TrainingSelection
from neighbor2neighbor.denoise_tree import denoise_tree
from neighbor2neighbor.denoiser import Denoiser
from neighbor2neighbor.unet import UNet
from utils.generate_noise import generate_noise
from utils.load_noise import LoadTimeNoise

SPECS = ("gauss_100", "shot_3")
SEED = 7


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JPEGs and PNGs of several sizes in two classes, train and val; one stem is a prefix of
    another with a dot (``a.jpg`` / ``a.k.png``), where the clean and the noisy names sort apart."""
    root = tmp_path_factory.mktemp("clean")
    sizes = [(40, 48), (64, 40), (36, 36), (70, 30), (50, 64)]
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                name = ("a.jpg", "a.k.png", "b.png", "c.jpeg", "d.png")[i]
                image.save(folder / name, **({"quality": 90} if name.endswith("g") else {}))
    return root


@pytest.fixture(scope="module", params=SPECS)
def trees(request, clean_tree: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(spec, clean root, noisy root)``: the noisy tree written by utils.generate_noise."""
    noisy = tmp_path_factory.mktemp(f"noisy_{request.param}")
    generate_noise(clean_tree, noisy, request.param, seed=SEED, workers=1)
    return request.param, clean_tree, noisy


@pytest.mark.parametrize(
    "selection",
    [TrainingSelection(), TrainingSelection((36, 64), images_per_class=2, subset_seed=3)],
)
def test_crops_with_load_time_noise_equal_the_crops_of_the_noisy_tree(trees, selection):
    spec, clean, noisy = trees
    from_tree = NoisyCropDataset(noisy / "train", 32, seed=1, selection=selection)
    noise = LoadTimeNoise(spec, SEED, clean)
    at_load = NoisyCropDataset(clean / "train", 32, seed=1, selection=selection, noise=noise)
    assert len(at_load) == len(from_tree) == (10 if not selection.active else 4)
    names = [p.relative_to(noisy).with_suffix("").as_posix() for p in from_tree.files]
    assert [p.relative_to(clean).with_suffix("").as_posix() for p in at_load.files] == names
    plain = NoisyCropDataset(clean / "train", 32, seed=1, selection=selection)
    for epoch in (1, 2):
        from_tree.set_epoch(epoch), at_load.set_epoch(epoch), plain.set_epoch(epoch)
        for index in range(len(from_tree)):
            assert torch.equal(at_load[(index, 0)], from_tree[(index, 0)]), names[index]
    assert not torch.equal(at_load[(0, 0)], plain[(0, 0)])  # the noise is there


def test_load_time_noise_of_a_file_outside_its_clean_root_is_an_error(tmp_path, clean_tree):
    noise = LoadTimeNoise("gauss_50", 0, clean_tree / "train")
    with pytest.raises(ValueError, match="is not below .*clean root"):
        noise.pixels(clean_tree / "val" / "c0" / "b.png")


def test_denoised_tree_from_load_time_noise_has_the_bytes_of_the_one_from_the_noisy_tree(
    tmp_path, trees
):
    spec, clean, noisy = trees
    torch.manual_seed(0)
    denoiser = Denoiser(UNet(n_feature=8), device="cpu")
    from_tree, at_load = tmp_path / "from_tree", tmp_path / "at_load"
    denoise_tree(denoiser, noisy, from_tree, splits=["train", "val"], batch_size=3)
    noise = LoadTimeNoise(spec, SEED, clean)
    summary = denoise_tree(
        denoiser, clean, at_load, splits=["train", "val"], batch_size=3, noise=noise
    )
    assert summary.n_written == 20
    files = sorted(p.relative_to(from_tree) for p in from_tree.rglob("*.png"))
    assert files == sorted(p.relative_to(at_load) for p in at_load.rglob("*.png"))
    assert len(files) == 20
    for rel in files:
        assert (at_load / rel).read_bytes() == (from_tree / rel).read_bytes(), rel


def test_n2n_training_and_denoise_stages_with_noise_at_load_need_no_noisy_tree(
    tmp_path, trees, tiny_config
):
    """The stage entry points with ``noise.at_load=true``: same weights, losses and denoised
    bytes as from the noisy tree, whose folder is never created."""
    from neighbor2neighbor.denoise import main as denoise_main
    from neighbor2neighbor.train import train

    spec, clean, noisy = trees
    results = {}
    for mode in ("tree", "at_load"):
        out = tmp_path / mode
        data_root = noisy if mode == "tree" else tmp_path / "never_written"
        keys = {
            "data.clean_root": clean,
            "data.noisy_root": data_root,
            "data.denoised_root": out / "denoised",
            "noise.spec": spec,
            "noise.seed": SEED,
            "noise.at_load": mode == "at_load",
            "n2n.n_epoch": 2,
            "denoise.device": "cpu",
        }
        cfg = tiny_config(f"{data_root}/train", out / "n2n", **keys)
        last = train(cfg)
        overrides = [f"{k}={v}" for k, v in keys.items()]
        args = ["--checkpoint", str(out / "n2n" / "model_last.pth"), *overrides]
        assert denoise_main(args) == 0
        model = torch.load(out / "n2n" / "model_last.pth", weights_only=True)["model"]
        results[mode] = last, model, out / "denoised"
    assert not (tmp_path / "never_written").exists()
    (last_tree, model_tree, den_tree), (last_load, model_load, den_load) = results.values()
    assert last_load["loss"] == last_tree["loss"] and last_load["n_steps"] == 2
    assert all(torch.equal(model_load[k], model_tree[k]) for k in model_tree)
    files = sorted(p.relative_to(den_tree) for p in den_tree.rglob("*.png"))
    assert len(files) == 20
    assert all((den_load / f).read_bytes() == (den_tree / f).read_bytes() for f in files)


def test_noisy_tree_source_redirects_only_folders_of_the_noisy_tree(tmp_path, tiny_config):
    from utils.load_noise import noisy_tree_source

    keys = {"data.clean_root": tmp_path / "c", "data.noisy_root": tmp_path / "n", "noise.seed": 5}
    off = tiny_config(tmp_path / "n" / "train", tmp_path / "o", **keys)
    assert noisy_tree_source(off, tmp_path / "n" / "train") == (tmp_path / "n" / "train", None)
    on = tiny_config(tmp_path / "n" / "train", tmp_path / "o", **keys, **{"noise.at_load": True})
    root, noise = noisy_tree_source(on, tmp_path / "n" / "train")
    assert root == tmp_path / "c" / "train"
    assert noise == LoadTimeNoise("gauss_100", 5, tmp_path / "c")
    assert noise.dataset_options() == ":noise=gauss_100:noise_seed=5"
    assert noisy_tree_source(on, tmp_path / "other") == (tmp_path / "other", None)
