"""The noise sweep's linear probe does not depend on what ran before it in the process.

``python -m dinov2.run.pipeline`` runs every stage in one process, so a sweep level's result must
not depend on the global RNG state that earlier stages (which a re-run skips) or earlier levels left
behind.
"""

from __future__ import annotations

import torch

from dinov2.data.transforms import make_classification_eval_transform
from dinov2.eval.data import load_dataset
from dinov2.eval.sweep import sweep_level


def _sweep(tiny_vit, image_tree, spec: str) -> dict:
    extra = image_tree / "extra"
    bases = [
        load_dataset(f"ImageNet:split={s}:root={image_tree}:extra={extra}")
        for s in ("TRAIN", "VAL")
    ]
    transform = make_classification_eval_transform(resize_size=32, crop_size=32)
    return sweep_level(
        tiny_vit, *bases, transform, spec, ks=[1, 3], linear_epochs=2, linear_batch_size=4
    )


def test_a_sweep_level_gives_the_same_linear_probe_whatever_the_global_rng_state(
    image_tree, tiny_vit
):
    results = []
    for prior_seed in (1, 12345):
        torch.manual_seed(prior_seed)  # what an earlier stage of the same process may have left
        results.append(_sweep(tiny_vit, image_tree, "gauss_100"))
    assert results[0] == results[1]


def test_the_linear_heads_of_a_sweep_level_are_initialised_from_a_fixed_seed(
    image_tree, tiny_vit, monkeypatch
):
    import dinov2.eval.sweep as sweep

    initial_weights = []
    real = sweep.probe_cached_features

    def spy(*args, **kwargs):
        initial_weights.append(torch.randn(4))  # the first draw the heads' initialisation would see
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "probe_cached_features", spy)
    for prior_seed in (3, 4):
        torch.manual_seed(prior_seed)
        _sweep(tiny_vit, image_tree, "clean")
    assert torch.equal(initial_weights[0], initial_weights[1])
