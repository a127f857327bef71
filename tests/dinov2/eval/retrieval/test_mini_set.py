"""The mini retrieval set: documented structure, real JPEGs, and mAP 100 for a perfect feature."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dinov2.eval.retrieval.data import RetrievalImages, load_gnd
from dinov2.eval.retrieval.mini_set import N_DB_PER_PHOTO, PHOTOS, build_mini_set
from dinov2.eval.retrieval.revisited import evaluate_revisited, rank_by_similarity


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval")
    build_mini_set(root, size=32)
    return root


def test_mini_set_has_the_documented_structure(mini_root):
    folder = mini_root / "mini"
    with open(folder / "gnd_mini.pkl", "rb") as f:
        cfg = pickle.load(f)
    n_photos = len(PHOTOS)
    assert (
        len(cfg["imlist"]) == n_photos * N_DB_PER_PHOTO
        and len(cfg["qimlist"]) == len(cfg["gnd"]) == n_photos
    )
    for p, g in enumerate(cfg["gnd"]):
        same_photo = set(range(p * N_DB_PER_PHOTO, (p + 1) * N_DB_PER_PHOTO))
        lists = [set(g["easy"]), set(g["hard"]), set(g["junk"])]
        assert g["easy"] and g["hard"]  # every query has both kinds of positives
        assert (
            set().union(*lists) == same_photo and sum(map(len, lists)) == N_DB_PER_PHOTO
        )  # a partition
        query = Image.open(folder / "jpg" / f"{cfg['qimlist'][p]}.jpg")
        assert query.format == "JPEG" and max(query.size) == 32
        x1, y1, x2, y2 = g["bbx"]
        assert 0 <= x1 < x2 <= query.width and 0 <= y1 < y2 <= query.height
    for name in cfg["imlist"]:
        assert max(Image.open(folder / "jpg" / f"{name}.jpg").size) == 32


def test_source_photo_id_feature_gets_map_100(mini_root):
    cfg, _ = load_gnd(mini_root, "mini")
    db_ids = np.repeat(np.arange(len(PHOTOS)), N_DB_PER_PHOTO)
    db_f, q_f = np.eye(len(PHOTOS))[db_ids], np.eye(len(PHOTOS))
    results = evaluate_revisited(rank_by_similarity(db_f, q_f), cfg["gnd"])
    for setting in ("easy", "medium", "hard"):
        assert results[f"mAP_{setting}"] == pytest.approx(100.0)
        assert results[f"mP@1_{setting}"] == pytest.approx(100.0)


def test_build_keeps_an_existing_set_and_refuses_a_foreign_folder(mini_root, tmp_path):
    before = (mini_root / "mini" / "gnd_mini.pkl").stat().st_mtime_ns
    build_mini_set(mini_root, size=32)
    assert (mini_root / "mini" / "gnd_mini.pkl").stat().st_mtime_ns == before
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_mini_set(tmp_path, size=32)


def test_gnd_without_images_is_a_one_line_error(mini_root, tmp_path):
    (tmp_path / "mini").mkdir()
    (tmp_path / "mini" / "gnd_mini.pkl").write_bytes(
        (mini_root / "mini" / "gnd_mini.pkl").read_bytes()
    )
    with pytest.raises(FileNotFoundError) as e:
        load_gnd(tmp_path, "mini")
    assert "\n" not in str(e.value) and "jpg" in str(e.value) and "gnd_mini.pkl" in str(e.value)
    with pytest.raises(FileNotFoundError, match="mini_set"):
        load_gnd(tmp_path / "nowhere", "mini")


def test_noise_is_seeded_per_image_and_query_crop_uses_the_box(mini_root):
    cfg, jpg = load_gnd(mini_root, "mini")
    plain = RetrievalImages(jpg, cfg["qimlist"], transform=lambda x: x)
    noisy = RetrievalImages(
        jpg, cfg["qimlist"], transform=lambda x: x, noise="gauss_50", noise_seed=100
    )
    again = RetrievalImages(
        jpg, cfg["qimlist"], transform=lambda x: x, noise="gauss_50", noise_seed=100
    )
    a, b, c = (np.asarray(d.load(1)) for d in (plain, noisy, again))
    assert np.array_equal(b, c) and not np.array_equal(a, b)
    cropped = RetrievalImages(
        jpg, cfg["qimlist"], transform=lambda x: x, boxes=[g["bbx"] for g in cfg["gnd"]]
    )
    x1, y1, x2, y2 = (int(round(v)) for v in cfg["gnd"][1]["bbx"])
    assert cropped.load(1).size == (x2 - x1, y2 - y1)


def test_run_retrieval_end_to_end_with_noise_and_denoiser(mini_root, tiny_vit, tmp_path):
    from torchvision.transforms import v2

    from dinov2.eval.retrieval.evaluate import RESULTS_NAME, run_retrieval

    transform = v2.Compose(
        [v2.PILToTensor(), v2.Resize(32), v2.CenterCrop(32), v2.ToDtype(torch.float32, scale=True)]
    )
    calls = []

    def identity_denoiser(arr):
        calls.append(arr.shape)
        return arr

    results = run_retrieval(
        tiny_vit,
        mini_root,
        ["mini"],
        transform,
        noise="gauss_25",
        denoiser=identity_denoiser,
        crop_queries=True,
        batch_size=16,
        output_dir=tmp_path,
    )
    written = json.loads((tmp_path / RESULTS_NAME).read_text())
    assert written["mini"] == results["mini"] and written["settings"]["noise"] == "gauss_25"
    assert len(calls) == len(PHOTOS) * (
        N_DB_PER_PHOTO + 1
    )  # every db image and query went through it
    for key in ("mAP_easy", "mAP_medium", "mAP_hard", "mP@1_easy", "mP@5_medium", "mP@10_hard"):
        assert 0.0 <= results["mini"][key] <= 100.0
