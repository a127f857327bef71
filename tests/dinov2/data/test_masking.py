"""MaskingGenerator statistics: masked count within the request, blocks are rectangles."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dinov2.data import MaskingGenerator


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5])
def test_masked_count_never_exceeds_request_and_nearly_reaches_it(ratio):
    random.seed(0)
    generator = MaskingGenerator((16, 16), max_num_patches=0.5 * 256)
    n_requested = int(256 * ratio)
    counts = np.array([generator(n_requested).sum() for _ in range(200)])
    assert counts.max() <= n_requested
    assert counts.min() >= 0.95 * n_requested
    assert counts.mean() >= 0.99 * n_requested


def test_zero_request_gives_empty_mask_of_grid_shape():
    mask = MaskingGenerator((3, 5), max_num_patches=4)(0)
    assert mask.shape == (3, 5) and mask.dtype == bool and not mask.any()


def test_single_block_is_one_filled_rectangle_at_a_random_position():
    # Area fixed to 9 and aspect fixed to 1: every draw must be exactly one 3x3 block.
    random.seed(1)
    generator = MaskingGenerator(
        (8, 8), min_num_patches=9, max_num_patches=9, min_aspect=1.0, max_aspect=1.0
    )
    corners = set()
    for _ in range(100):
        mask = generator(9)
        rows, cols = np.nonzero(mask)
        assert mask.sum() == 9
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
        corners.add((rows.min(), cols.min()))
    assert len(corners) > 10, "block positions should vary"


def _n_components(mask: np.ndarray) -> int:
    """Number of 4-connected components of a bool grid (iterative flood fill)."""
    seen = np.zeros_like(mask)
    count = 0
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        while stack:
            r, c = stack.pop()
            if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c] and not seen[r, c]:
                seen[r, c] = True
                stack += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
    return count


@pytest.mark.parametrize("n_requested", [10, 40, 90])
def test_masks_are_a_few_contiguous_blocks_not_scattered_patches(n_requested):
    # Scattering 40 patches at random on 14x14 gives ~30 components; block-wise masking a few.
    random.seed(2)
    generator = MaskingGenerator((14, 14), max_num_patches=0.5 * 196)
    components = [_n_components(generator(n_requested)) for _ in range(50)]
    assert np.mean(components) <= 3.0


def test_same_python_seed_reproduces_the_mask():
    generator = MaskingGenerator((10, 10), max_num_patches=50)
    random.seed(3)
    first = generator(30)
    random.seed(3)
    assert np.array_equal(first, generator(30))


def test_missing_size_limit_is_a_clear_error():
    with pytest.raises(ValueError, match="num_masking_patches or max_num_patches"):
        MaskingGenerator((4, 4))
