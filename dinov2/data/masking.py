"""Block-wise patch masking for iBOT (BEiT / DINOv2 algorithm, same sampling)."""

from __future__ import annotations

import math
import random

import numpy as np


class MaskingGenerator:
    """Masks random axis-aligned rectangles of patches until the requested count is reached.

    Each rectangle has a target area U(min_num_patches, max allowed) and a log-uniform aspect
    ratio in [min_aspect, max_aspect]; it is kept only if it adds between 1 and the remaining
    budget of new patches, so the masked count never exceeds the request. After 10 failed
    attempts for one rectangle the generator stops (the count can then fall short, as in BEiT).
    Randomness comes from Python's ``random`` module (as the official code), so seeding it
    (the data-loader workers do) reproduces the masks.

    Args:
        input_size: patch grid (H, W) or an int for a square grid.
        num_masking_patches: default budget (kept for the official signature; ``__call__`` takes
        it). min_num_patches: smallest target area of one rectangle. max_num_patches: largest area
        of one rectangle (default: ``num_masking_patches``). min_aspect, max_aspect: aspect-ratio
        range (h / w); ``max_aspect`` defaults to 1 / min_aspect.
    """

    def __init__(
        self,
        input_size: int | tuple[int, int],
        num_masking_patches: int | None = None,
        min_num_patches: int = 4,
        max_num_patches: float | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
    ):
        if not isinstance(input_size, tuple):
            input_size = (input_size, input_size)
        self.height, self.width = input_size
        self.num_patches = self.height * self.width
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        if self.max_num_patches is None:
            raise ValueError("MaskingGenerator needs num_masking_patches or max_num_patches")
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))

    def __repr__(self) -> str:
        return (
            f"MaskingGenerator({self.height}x{self.width}, area "
            f"[{self.min_num_patches}, {self.max_num_patches}], "
            f"log-aspect [{self.log_aspect_ratio[0]:.3f}, {self.log_aspect_ratio[1]:.3f}])"
        )

    def get_shape(self) -> tuple[int, int]:
        return self.height, self.width

    def _mask(self, mask: np.ndarray, max_mask_patches: float) -> int:
        """Add one rectangle to ``mask`` in place; return the number of newly masked patches."""
        for _ in range(10):
            target_area = random.uniform(self.min_num_patches, max_mask_patches)
            aspect_ratio = math.exp(random.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w >= self.width or h >= self.height:
                continue
            top = random.randint(0, self.height - h)
            left = random.randint(0, self.width - w)
            block = mask[top : top + h, left : left + w]
            n_new = h * w - int(block.sum())
            # Overlap with earlier rectangles is allowed, but the rectangle must add something
            # and stay within the remaining budget.
            if 0 < n_new <= max_mask_patches:
                block[...] = True
                return n_new
        return 0

    def __call__(self, num_masking_patches: int = 0) -> np.ndarray:
        """Return a (H, W) bool mask with at most ``num_masking_patches`` True entries."""
        mask = np.zeros(self.get_shape(), dtype=bool)
        mask_count = 0
        while mask_count < num_masking_patches:
            budget = min(num_masking_patches - mask_count, self.max_num_patches)
            delta = self._mask(mask, budget)
            if delta == 0:
                break
            mask_count += delta
        return mask
