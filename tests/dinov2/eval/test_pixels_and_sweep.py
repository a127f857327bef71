"""Reference rows and the noise sweep: raw-pixel kNN by brute force, the clean level equals the
clean evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dinov2.data.transforms import make_classification_eval_transform
from dinov2.eval.data import eval_datasets, load_dataset
from dinov2.eval.knn import run_knn
from dinov2.eval.pixels import MAX_PIXEL_SIDE, PixelBackbone
from dinov2.eval.sweep import CLEAN, check_sweep_specs, default_sweep_specs, sweep_level


def _strings(root):
    return (
        f"ImageNet:split=TRAIN:root={root}:extra={root / 'extra'}",
        f"ImageNet:split=VAL:root={root}:extra={root / 'extra'}",
    )


def test_raw_pixel_knn_equals_a_brute_force_nearest_neighbour(image_tree):
    train, val = eval_datasets(
        *_strings(image_tree), resize_size=32, crop_size=32, noise="gauss_100", train_augment=False
    )
    result = run_knn(PixelBackbone(32), train, val, ks=[1])
    # By hand: cosine similarity of flattened normalised pixels, label of the most similar training
    # image.
    xtr = np.stack([train[i][0].numpy().ravel() for i in range(len(train))])
    xva = np.stack([val[i][0].numpy().ravel() for i in range(len(val))])
    ytr = np.array([train[i][1] for i in range(len(train))])
    yva = np.array([val[i][1] for i in range(len(val))])
    xtr /= np.linalg.norm(xtr, axis=1, keepdims=True)
    xva /= np.linalg.norm(xva, axis=1, keepdims=True)
    predicted = ytr[np.argmax(xva @ xtr.T, axis=1)]
    assert result["k=1"]["top1"] == pytest.approx(100.0 * np.mean(predicted == yva), abs=1e-4)


def test_pixel_backbone_gives_linear_probe_inputs_and_refuses_large_or_mismatched_crops():
    x = torch.randn(2, 3, 8, 8)
    outputs = PixelBackbone(8).get_intermediate_layers(x, 4, return_class_token=True)
    assert len(outputs) == 4 and all(torch.equal(cls, x.flatten(1)) for _, cls in outputs)
    with pytest.raises(ValueError, match="at most 64"):
        PixelBackbone(MAX_PIXEL_SIDE + 1)
    with pytest.raises(ValueError, match="expects"):
        PixelBackbone(8)(torch.randn(2, 3, 16, 16))


def test_sweep_at_the_clean_level_equals_the_clean_evaluation_and_a_noise_level_the_noisy_one(
    image_tree, tiny_vit
):
    train_str, val_str = _strings(image_tree)
    transform = make_classification_eval_transform(resize_size=32, crop_size=32)
    bases = load_dataset(train_str), load_dataset(val_str)
    for spec, noise in ((CLEAN, None), ("gauss_100", "gauss_100")):
        swept = sweep_level(
            tiny_vit, *bases, transform, spec, ks=[1, 3], linear_epochs=1, linear_batch_size=4
        )
        direct = run_knn(
            tiny_vit,
            *eval_datasets(train_str, val_str, 32, 32, noise=noise, train_augment=False),
            ks=[1, 3],
        )
        assert swept["knn_top1"] == pytest.approx(direct["best"]["top1"])
        assert 0.0 <= swept["linear_top1"] <= 100.0


def test_default_sweep_is_clean_plus_the_papers_three_levels_and_bad_levels_name_the_key():
    assert default_sweep_specs("gauss") == ["clean", "gauss_50", "gauss_100", "gauss_255"]
    assert default_sweep_specs("shot") == ["clean", "shot_10", "shot_3", "shot_1"]
    assert check_sweep_specs(["clean", "speckle_0.7"]) == ["clean", "speckle_0.7"]
    with pytest.raises(ValueError, match="eval.sweep.specs"):
        check_sweep_specs([])
    with pytest.raises(ValueError):
        check_sweep_specs(["gauss_-1"])
