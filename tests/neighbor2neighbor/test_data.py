"""Training-image selection: the reference's 256-512 px size filter and its fixed per-class
subset."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from neighbor2neighbor.data import (
    NoisyCropDataset,
    TrainingSelection,
    list_images,
    select_images,
    training_selection,
)
from utils.config import DEMO_EXPERIMENT, load_experiment

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path)
    return path


def test_size_filter_keeps_exactly_the_images_with_both_sides_within_256_512(
    tmp_path: Path,
) -> None:
    sizes = {  # (width, height) -> kept?
        (256, 256): True,
        (512, 512): True,
        (300, 400): True,
        (512, 256): True,
        (255, 300): False,
        (300, 255): False,
        (513, 300): False,
        (300, 513): False,
        (28, 28): False,
        (600, 700): False,
    }
    for i, (w, h) in enumerate(sizes):
        _write(tmp_path / "c" / f"{i}_{w}x{h}.png", w, h)
    files = list_images(tmp_path)
    kept = select_images(files, tmp_path, TrainingSelection(side_range=(256, 512)))
    expected = {f"{w}x{h}" for (w, h), keep in sizes.items() if keep}
    assert {f.stem.split("_")[1] for f in kept} == expected
    assert kept == sorted(kept, key=lambda p: p.relative_to(tmp_path).as_posix())  # order as listed
    dataset = NoisyCropDataset(tmp_path, 256, 0, TrainingSelection(side_range=(256, 512)))
    assert dataset.files == kept and len(dataset) == 4
    assert all(
        min(Image.open(f).size) >= 256 for f in dataset.files
    )  # nothing padded up to the crop


def _classes(root: Path, counts: dict[str, int]) -> list[Path]:
    for name, n in counts.items():
        for i in range(n):
            _write(root / name / f"img{i:02d}.png", 8, 8)
    return list_images(root)


def test_per_class_subset_is_fixed_by_its_seed_bounded_and_independent_of_other_classes(
    tmp_path: Path,
) -> None:
    files = _classes(tmp_path / "a", {"n01": 7, "n02": 7, "n03": 2})
    subset = TrainingSelection(images_per_class=3, subset_seed=42)
    first = select_images(files, tmp_path / "a", subset)
    assert first == select_images(files, tmp_path / "a", subset)  # deterministic
    per_class = {c: [f for f in first if f.parent.name == c] for c in ("n01", "n02", "n03")}
    assert [len(v) for v in per_class.values()] == [
        3,
        3,
        2,
    ]  # at most 3; a small class keeps all it has
    assert set(first) <= set(files)
    other_seed = select_images(
        files, tmp_path / "a", TrainingSelection(images_per_class=3, subset_seed=7)
    )
    assert other_seed != first and len(other_seed) == 8
    # another class added next to them leaves these classes' subsets as they were
    more = _classes(tmp_path / "b", {"n01": 7, "n02": 7, "n03": 2, "n00": 5})
    again = select_images(more, tmp_path / "b", subset)
    assert [f.relative_to(tmp_path / "b") for f in again if f.parent.name != "n00"] == [
        f.relative_to(tmp_path / "a") for f in first
    ]


def test_subset_is_drawn_after_the_size_filter(tmp_path: Path) -> None:
    for i in range(6):
        _write(tmp_path / "n01" / f"small{i}.png", 100, 100)
    for i in range(3):
        _write(tmp_path / "n01" / f"big{i}.png", 300, 300)
    kept = select_images(
        list_images(tmp_path), tmp_path, TrainingSelection((256, 512), images_per_class=2)
    )
    assert len(kept) == 2 and all(f.stem.startswith("big") for f in kept)


def test_a_filter_that_leaves_no_image_is_a_one_line_error_naming_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "n01" / "digit.png", 28, 28)
    with pytest.raises(ValueError) as exc:
        NoisyCropDataset(tmp_path, 256, 0, TrainingSelection(side_range=(256, 512)))
    message = str(exc.value)
    assert (
        "\n" not in message
        and "n2n.size_filter" in message
        and str(tmp_path) in message
        and "off" in message
    )


def test_size_filter_auto_is_on_only_with_the_references_256_pixel_crops() -> None:
    assert training_selection("auto", 256, 512, 256).side_range == (256, 512)
    assert not training_selection("auto", 256, 512, 64).active
    assert training_selection("on", 256, 512, 64).side_range == (256, 512)
    assert not training_selection("off", 256, 512, 256).active
    with pytest.raises(ValueError, match="n2n.size_filter"):
        training_selection("sometimes", 256, 512, 256)
    with pytest.raises(ValueError, match="n2n.min_side"):
        training_selection("on", 600, 512, 256)


def _selection(cfg) -> TrainingSelection:
    c = cfg.n2n
    return training_selection(
        c.size_filter, c.min_side, c.max_side, c.crop_size, c.images_per_class, c.subset_seed
    )


def test_paper_configs_filter_sizes_in1k_takes_100_per_class_at_batch_8_demo_keeps_all() -> None:
    demo = load_experiment(DEMO_EXPERIMENT)
    assert not _selection(demo).active  # the demo's 28-px digits all train
    for path in sorted((REPO / "configs" / "experiments" / "imagenet100").glob("*.yaml")):
        sel = _selection(load_experiment(path))
        assert sel == TrainingSelection((256, 512), 0, 42), path.name
    for path in sorted((REPO / "configs" / "experiments" / "imagenet1k").glob("*.yaml")):
        cfg = load_experiment(path)
        assert _selection(cfg) == TrainingSelection((256, 512), 100, 42), path.name
        assert cfg.n2n.batch_size == 8
