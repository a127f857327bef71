"""Neighbour sub-sampler: neighbours only, the 8 ordered pairs equally likely, never the same
pixel."""

from __future__ import annotations

import torch

from neighbor2neighbor.subsample import generate_mask_pair, generate_subimages


def coordinate_image(n: int, h: int, w: int) -> torch.Tensor:
    """(N, 3, H, W) float64 whose pixel values encode (sample, row, column); channel c adds
    c·10⁷."""
    s, y, x = torch.meshgrid(torch.arange(n), torch.arange(h), torch.arange(w), indexing="ij")
    code = (s * 100_000 + y * 1000 + x).double()
    return torch.stack([code + c * 10_000_000 for c in range(3)], dim=1)


def decode(sub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    code = sub[:, 0].long()
    return code // 100_000, (code % 100_000) // 1000, code % 1000


def test_subimages_take_distinct_neighbouring_pixels_of_the_same_cell():
    img = coordinate_image(2, 64, 96)
    mask1, mask2 = generate_mask_pair(img, torch.Generator().manual_seed(0))
    g1, g2 = generate_subimages(img, mask1), generate_subimages(img, mask2)
    assert g1.shape == g2.shape == (2, 3, 32, 48)
    s1, y1, x1 = decode(g1)
    s2, y2, x2 = decode(g2)
    cell_y, cell_x = torch.meshgrid(torch.arange(32), torch.arange(48), indexing="ij")
    assert torch.equal(s1, s2) and torch.equal(s1[:, 0, 0], torch.tensor([0, 1]))
    for y, x in ((y1, x1), (y2, x2)):
        assert torch.equal(y // 2, cell_y.expand_as(y)) and torch.equal(x // 2, cell_x.expand_as(x))
    manhattan = (y1 - y2).abs() + (x1 - x2).abs()
    assert torch.all(manhattan == 1)  # edge neighbours: never the same pixel, never diagonal
    for c in range(3):  # every channel is sampled at the same positions
        assert torch.equal(g1[:, c] - g1[:, 0], torch.full_like(g1[:, 0], c * 10_000_000))


def test_each_of_the_8_ordered_pairs_has_frequency_one_eighth():
    img = coordinate_image(1, 256, 256)  # 16384 cells
    mask1, mask2 = generate_mask_pair(img, torch.Generator().manual_seed(1))
    _, y1, x1 = decode(generate_subimages(img, mask1))
    _, y2, x2 = decode(generate_subimages(img, mask2))
    first = (y1 % 2) * 2 + x1 % 2  # raster index inside the cell
    second = (y2 % 2) * 2 + x2 % 2
    counts = torch.bincount((first * 4 + second).flatten(), minlength=16)
    pairs = {(0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2)}
    n_cells = 128 * 128
    sd = (n_cells * (1 / 8) * (7 / 8)) ** 0.5  # binomial standard deviation, about 42
    for a in range(4):
        for b in range(4):
            count = int(counts[a * 4 + b])
            if (a, b) in pairs:
                assert abs(count - n_cells / 8) < 5 * sd, (a, b, count)
            else:
                assert count == 0, (a, b, count)


def test_masks_are_reproducible_from_the_generator_seed_and_one_hot():
    img = torch.rand(2, 3, 32, 32)
    m1a, m2a = generate_mask_pair(img, torch.Generator().manual_seed(7))
    m1b, m2b = generate_mask_pair(img, torch.Generator().manual_seed(7))
    m1c, _ = generate_mask_pair(img, torch.Generator().manual_seed(8))
    assert torch.equal(m1a, m1b) and torch.equal(m2a, m2b) and not torch.equal(m1a, m1c)
    assert m1a.shape == (2, 16, 16, 4) and torch.all(m1a.sum(-1) == 1) and not torch.any(m1a & m2a)


def test_odd_last_row_and_column_are_ignored():
    img = coordinate_image(1, 9, 7)
    mask1, _ = generate_mask_pair(img, torch.Generator().manual_seed(0))
    _, y, x = decode(generate_subimages(img, mask1))
    assert y.shape == (1, 4, 3) and int(y.max()) <= 7 and int(x.max()) <= 5
