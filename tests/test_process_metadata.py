"""process_metadata.py: index files of ImageFolder roots, any extension, labels.txt, atomic
output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from process_metadata import main

EXTENSIONS = (".jpg", ".JPEG", ".png", ".bmp", ".tif", ".webp", ".ppm")


def make_root(
    root: Path, n_train: dict[str, int], n_val: dict[str, int], labels: str | None = None
) -> Path:
    """An ImageFolder root whose files cycle through many extensions; a stray text file in each
    class."""
    pixels = np.full((8, 8, 3), 100, np.uint8)
    for split, counts in (("train", n_train), ("val", n_val)):
        for cls, n in counts.items():
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(pixels).save(folder / f"img{i}{EXTENSIONS[i % len(EXTENSIONS)]}")
            (folder / "README.txt").write_text("not an image")
    if labels is not None:
        (root / "labels.txt").write_text(labels)
    return root


def load_split(extra: Path, split: str):
    entries = np.load(extra / f"entries-{split}.npy")
    return (
        [p.decode() for p in entries["path"]],
        entries["class_index"].tolist(),
        np.load(extra / f"class-ids-{split}.npy").tolist(),
        np.load(extra / f"class-names-{split}.npy").tolist(),
    )


def test_index_lists_every_image_of_any_extension_with_sorted_class_indices(tmp_path, capsys):
    root = make_root(tmp_path / "ds", {"dog": 9, "cat": 3}, {"cat": 2, "dog": 1})
    assert main([str(root)]) == 0
    assert "TRAIN 12 images, VAL 3 images" in capsys.readouterr().out
    paths, targets, ids, names = load_split(root / "extra", "TRAIN")
    assert ids == ["cat", "dog"] and names == ["cat", "dog"]  # no labels.txt: sorted folder names
    assert len(paths) == 12 and paths == sorted(paths)
    assert {Path(p).suffix for p in paths} == set(EXTENSIONS)  # .txt ignored, upper case kept
    assert targets == [0 if p.startswith("cat/") else 1 for p in paths]
    record = json.loads((root / "extra" / "index-TRAIN.json").read_text())
    assert record["n_files"] == 12
    assert not [
        p for p in (root / "extra").iterdir() if p.name.startswith(".")
    ]  # no temp files left


def test_labels_file_orders_classes_and_gives_names_shared_by_splits(tmp_path):
    labels = "n02\u00e9,tench, Tinca tinca\nn01,goldfish\nn03,unused class\n"
    root = make_root(tmp_path / "ds", {"n01": 2, "n02\u00e9": 2}, {"n01": 1}, labels=labels)
    assert main([str(root), "--extra", str(tmp_path / "idx")]) == 0
    train = load_split(tmp_path / "idx", "TRAIN")
    val = load_split(tmp_path / "idx", "VAL")
    assert (
        train[2] == val[2] == ["n02\u00e9", "n01", "n03"]
    )  # labels.txt order, same list for both splits
    assert train[3] == ["tench, Tinca tinca", "goldfish", "unused class"]
    assert val[1] == [1]  # val lacks class n02é, yet n01 keeps index 1
    assert not (root / "extra").exists()


def test_class_folder_missing_from_labels_is_an_error(tmp_path, capsys):
    root = make_root(tmp_path / "ds", {"a": 1, "b": 1}, {}, labels="a,first\n")
    assert main([str(root)]) == 2  # an input error (utils.cli)
    err = capsys.readouterr().err
    assert "'b'" in err and "labels.txt" in err


def test_root_without_splits_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no train/ or val/" in capsys.readouterr().err


def test_several_roots_in_one_call_and_extra_only_with_one_root(tmp_path):
    roots = [make_root(tmp_path / name, {"x": 2}, {"x": 1}) for name in ("r1", "r2")]
    assert main([str(r) for r in roots]) == 0
    assert all((r / "extra" / "index-VAL.json").is_file() for r in roots)
    with pytest.raises(SystemExit):
        main([str(r) for r in roots] + ["--extra", str(tmp_path / "idx")])


def test_noisy_copy_written_by_generate_noise_indexes_like_its_source(tmp_path):
    from dinov2.data.datasets import ImageNet
    from utils.generate_noise import generate_noise

    src = make_root(tmp_path / "clean", {"b": 3, "a": 2}, {"a": 1}, labels="b,bee\na,ant\n")
    generate_noise(src, tmp_path / "noisy", "gauss_50", workers=1)
    assert main([str(src), "--extra", str(tmp_path / "clean_extra")]) == 0
    assert not (src / "extra").exists()  # --extra keeps a read-only clean root untouched
    assert main([str(tmp_path / "noisy")]) == 0
    clean = ImageNet(split="TRAIN", root=src, extra=tmp_path / "clean_extra")
    noisy = ImageNet(split="TRAIN", root=tmp_path / "noisy")
    assert len(noisy) == len(clean) == 5
    assert [noisy.get_image_path(i).stem for i in range(5)] == [
        clean.get_image_path(i).stem for i in range(5)
    ]
    np.testing.assert_array_equal(
        clean.get_targets(), noisy.get_targets()
    )  # labels.txt travelled along
    assert noisy.get_class_names().tolist() == ["bee", "ant"]
