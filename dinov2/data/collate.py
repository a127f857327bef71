"""Batch collation for DINOv2 pretraining: stack the crops and draw the iBOT masks."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .batched_crop import RaggedImages


def _stack_crops(samples_list: Sequence[tuple[dict, Any]], key: str) -> torch.Tensor:
    """Crop-major stacking: all images' crop 0, then all images' crop 1, ... -> (n_crops * B, 3, H,
    W)."""
    n_crops = len(samples_list[0][0][key])
    return torch.stack([sample[key][i] for i in range(n_crops) for sample, _ in samples_list])


def collate_data_and_cast(
    samples_list: Sequence[tuple[dict, Any]],
    mask_ratio_tuple: tuple[float, float],
    mask_probability: float,
    dtype: torch.dtype,
    n_tokens: int | None = None,
    mask_generator: Callable[[int], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Collate ``(DataAugmentationDINO output, target)`` pairs into a training batch.

    Of the ``n_global = 2 * batch`` global crops, ``int(n_global * mask_probability)`` get a mask;
    the i-th of them draws its ratio uniformly in the i-th of equal sub-intervals of
    ``mask_ratio_tuple`` (official DINOv2 sampling), so the masked half spans the whole range.
    The masks are then shuffled across crops (Python ``random``).

    Returns a dict (official keys):
      ``collated_global_crops``: (n_global, 3, Hg, Wg) in ``dtype``, crop-major order;
      ``collated_local_crops``: (n_local * batch, 3, Hl, Wl) in ``dtype``;
      ``collated_masks``: (n_global, n_tokens) bool;
      ``mask_indices_list``: (M,) flat indices of the masked tokens;
      ``masks_weight``: (M,) 1 / (masked tokens of the token's crop) — each crop weighs 1 in iBOT;
      ``upperbound``: int, sum over masked crops of int(n_tokens * upper ratio) >= M (padding size);
      ``n_masked_patches``: (1,) long tensor holding M;
      ``collated_global_crops_paired`` (only if the samples carry ``global_crops_paired``):
      the paired (denoised) global crops, same layout as ``collated_global_crops``.
    """
    if n_tokens is None or mask_generator is None:
        raise ValueError(
            "collate_data_and_cast needs n_tokens and mask_generator (patch grid of a global crop)"
        )
    collated_global_crops = _stack_crops(samples_list, "global_crops")
    collated_local_crops = _stack_crops(samples_list, "local_crops")

    batch = {
        "collated_global_crops": collated_global_crops.to(dtype),
        "collated_local_crops": collated_local_crops.to(dtype),
        **draw_ibot_masks(
            len(collated_global_crops), mask_ratio_tuple, mask_probability, n_tokens, mask_generator
        ),
    }
    if "global_crops_paired" in samples_list[0][0]:
        batch["collated_global_crops_paired"] = _stack_crops(
            samples_list, "global_crops_paired"
        ).to(dtype)
    return batch


def draw_ibot_masks(
    n_global: int,
    mask_ratio_tuple: tuple[float, float],
    mask_probability: float,
    n_tokens: int,
    mask_generator: Callable[[int], np.ndarray],
) -> dict[str, Any]:
    """The iBOT masks of ``n_global`` global crops (the mask keys of :func:`collate_data_and_cast`).

    Randomness: Python's ``random`` (the mask generator's too), as the official collate.
    """
    n_samples_masked = int(n_global * mask_probability)
    # Kept as float32 tensors (not Python floats) so int(n_tokens * ratio) rounds as the official
    # code.
    probs = torch.linspace(*mask_ratio_tuple, n_samples_masked + 1)
    upperbound = 0
    masks_list = []
    for i in range(n_samples_masked):
        prob_min, prob_max = probs[i], probs[i + 1]
        masks_list.append(
            torch.from_numpy(mask_generator(int(n_tokens * random.uniform(prob_min, prob_max))))
        )
        upperbound += int(n_tokens * prob_max)
    for _ in range(n_samples_masked, n_global):
        masks_list.append(torch.from_numpy(mask_generator(0)))
    random.shuffle(masks_list)

    collated_masks = torch.stack(masks_list).flatten(1)
    mask_indices_list = collated_masks.flatten().nonzero().flatten()
    masks_weight = (
        (1 / collated_masks.sum(-1).clamp(min=1.0))
        .unsqueeze(-1)
        .expand_as(collated_masks)[collated_masks]
    )
    return {
        "collated_masks": collated_masks,
        "mask_indices_list": mask_indices_list,
        "masks_weight": masks_weight,
        "upperbound": upperbound,
        "n_masked_patches": torch.full(
            (1,), fill_value=mask_indices_list.shape[0], dtype=torch.long
        ),
    }


def collate_decoded_and_mask(
    samples_list: Sequence[tuple[dict, Any]],
    mask_ratio_tuple: tuple[float, float],
    mask_probability: float,
    n_tokens: int | None = None,
    mask_generator: Callable[[int], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Collate ``(DecodedImage output, target)`` pairs for the batched augmentation path.

    Returns the iBOT mask keys of :func:`collate_data_and_cast` (for ``2 * batch`` global crops,
    same draws) and the decoded images as one ragged uint8 batch
    (:class:`dinov2.data.batched_crop.RaggedImages` fields): ``images_flat``, ``image_sizes``,
    ``image_offsets``; with paired samples also ``paired_images_flat`` (same sizes and offsets).
    """
    if n_tokens is None or mask_generator is None:
        raise ValueError(
            "collate_decoded_and_mask needs n_tokens and mask_generator "
            "(patch grid of a global crop)"
        )
    images = RaggedImages.from_images([sample["image"] for sample, _ in samples_list])
    batch = {
        "images_flat": images.flat,
        "image_sizes": images.sizes,
        "image_offsets": images.offsets,
        **draw_ibot_masks(
            2 * len(samples_list), mask_ratio_tuple, mask_probability, n_tokens, mask_generator
        ),
    }
    if "paired_image" in samples_list[0][0]:
        batch["paired_images_flat"] = torch.cat(
            [sample["paired_image"].reshape(-1) for sample, _ in samples_list]
        )
    return batch
