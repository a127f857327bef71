"""The neighbour sub-sampler of Neighbor2Neighbor: two half-resolution sub-images of one noisy
image.

The image is cut into 2×2 cells. A cell's pixels are numbered in raster order
``0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1)`` (row, column inside the cell). For every cell one
of the 8 ordered pairs of *neighbouring* (edge-sharing, never diagonal) pixels is drawn uniformly;
the first pixel goes to ``g1(y)``, the second to ``g2(y)``. Same pair order as the reference, so a
generator seeded alike draws the same pairs.
"""

from __future__ import annotations

import torch

# Ordered pairs of edge-neighbours inside a 2×2 cell (raster indices), in the reference order.
NEIGHBOUR_PAIRS = torch.tensor([[0, 1], [0, 2], [1, 3], [2, 3], [1, 0], [2, 0], [3, 1], [3, 2]])


def generate_mask_pair(
    img: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random cell masks for the two sub-images of ``img`` (N, C, H, W).

    Returns ``(mask1, mask2)``, boolean (N, H // 2, W // 2, 4) on ``img.device``: exactly one True
    per cell, at the raster index of the pixel that sub-image takes; the two never select the same
    pixel and always select neighbours. The draw uses ``generator`` (on its own device, so a CPU
    generator drives a CUDA image reproducibly); an odd last row/column is ignored, as in the
    reference.
    """
    n, _, h, w = img.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    choice = torch.randint(
        0, len(NEIGHBOUR_PAIRS), (n, h // 2, w // 2), generator=generator, device=gen_device
    )
    pairs = NEIGHBOUR_PAIRS.to(gen_device)[choice]  # (N, H/2, W/2, 2)
    cells = torch.arange(4, device=gen_device)
    mask1 = pairs[..., 0:1] == cells
    mask2 = pairs[..., 1:2] == cells
    return mask1.to(img.device), mask2.to(img.device)


def image_to_cells(img: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, C, H // 2, W // 2, 4): each 2×2 cell's pixels in raster order."""
    n, c, h, w = img.shape
    h2, w2 = h // 2, w // 2
    cells = img[:, :, : 2 * h2, : 2 * w2].reshape(n, c, h2, 2, w2, 2)
    return cells.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h2, w2, 4)


def generate_subimages(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The sub-image of ``img`` (N, C, H, W) selected by ``mask`` (N, H // 2, W // 2, 4) → (N, C, H
    // 2, W // 2).

    Differentiable with respect to ``img`` (a gather), for every channel at once.
    """
    cells = image_to_cells(img)
    index = mask.to(torch.int64).argmax(dim=-1)  # (N, H/2, W/2): the chosen raster index per cell
    index = index[:, None, :, :, None].expand(-1, cells.shape[1], -1, -1, 1)
    return torch.gather(cells, dim=-1, index=index).squeeze(-1)
