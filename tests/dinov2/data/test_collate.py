"""collate_data_and_cast: crop stacking, official mask-ratio sampling, upperbound and weights."""

from __future__ import annotations

import random

import torch

from dinov2.data import MaskingGenerator, collate_data_and_cast

BATCH, N_LOCAL, GRID = 4, 3, 16
N_TOKENS = GRID * GRID


def _samples(paired: bool = False) -> list:
    torch.manual_seed(0)
    samples = []
    for _ in range(BATCH):
        crops = {
            "global_crops": [torch.randn(3, 32, 32) for _ in range(2)],
            "local_crops": [torch.randn(3, 16, 16) for _ in range(N_LOCAL)],
            "offsets": (),
        }
        if paired:
            crops["global_crops_paired"] = [torch.randn(3, 32, 32) for _ in range(2)]
        samples.append((crops, 0))
    return samples


def _collate(samples, dtype=torch.float32, mask_probability=0.5):
    generator = MaskingGenerator((GRID, GRID), max_num_patches=0.5 * N_TOKENS)
    return collate_data_and_cast(samples, (0.1, 0.5), mask_probability, dtype, N_TOKENS, generator)


def test_crops_are_stacked_crop_major_and_cast():
    samples = _samples()
    random.seed(0)
    batch = _collate(samples, dtype=torch.bfloat16)
    assert batch["collated_global_crops"].shape == (2 * BATCH, 3, 32, 32)
    assert batch["collated_local_crops"].shape == (N_LOCAL * BATCH, 3, 16, 16)
    assert batch["collated_global_crops"].dtype == torch.bfloat16
    # Row i * BATCH + b is crop i of image b.
    assert torch.equal(
        batch["collated_global_crops"][1 * BATCH + 2], samples[2][0]["global_crops"][1].bfloat16()
    )
    assert torch.equal(
        batch["collated_local_crops"][2 * BATCH + 3], samples[3][0]["local_crops"][2].bfloat16()
    )
    assert "collated_global_crops_paired" not in batch


def test_masked_half_spans_the_ratio_range_with_official_upperbound():
    samples = _samples()
    for seed in range(10):
        random.seed(seed)
        batch = _collate(samples)
        masks = batch["collated_masks"]
        assert masks.shape == (2 * BATCH, N_TOKENS) and masks.dtype == torch.bool
        counts = masks.sum(-1)
        # int(8 * 0.5) = 4 masked crops, ratios drawn in [0.1,0.2], [0.2,0.3], [0.3,0.4], [0.4,0.5].
        assert (counts == 0).sum() == 4
        masked = sorted(counts[counts > 0].tolist())
        for k, (low, high) in enumerate([(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5)]):
            # The generator may stop one patch short of its target (BEiT algorithm).
            assert int(N_TOKENS * low) - 1 <= masked[k] <= N_TOKENS * high
        # upperbound = sum of int(256 * upper ratio) in float32: 51 + 76 + 102 + 128.
        assert batch["upperbound"] == 357
        assert batch["upperbound"] >= masks.sum()


def test_indices_weights_and_count_describe_the_masks():
    random.seed(5)
    batch = _collate(_samples())
    masks = batch["collated_masks"]
    assert torch.equal(batch["mask_indices_list"], torch.nonzero(masks.flatten()).flatten())
    assert batch["n_masked_patches"].tolist() == [int(masks.sum())]
    weights = batch["masks_weight"]
    assert weights.shape == (int(masks.sum()),)
    # Each masked crop's weights sum to 1, so the total is the number of masked crops.
    assert abs(weights.sum().item() - 4) < 1e-5
    owner = batch["mask_indices_list"] // N_TOKENS
    for crop in owner.unique():
        torch.testing.assert_close(
            weights[owner == crop], torch.full_like(weights[owner == crop], 1 / masks[crop].sum())
        )


def test_paired_global_crops_are_collated_in_the_same_layout():
    samples = _samples(paired=True)
    random.seed(0)
    batch = _collate(samples)
    paired = batch["collated_global_crops_paired"]
    assert paired.shape == (2 * BATCH, 3, 32, 32)
    assert torch.equal(paired[1 * BATCH + 1], samples[1][0]["global_crops_paired"][1])


def test_same_python_seed_reproduces_the_masks():
    samples = _samples()
    random.seed(7)
    first = _collate(samples)["collated_masks"]
    random.seed(7)
    assert torch.equal(first, _collate(samples)["collated_masks"])
