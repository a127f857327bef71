"""DINOv2 multi-crop augmentation of whole batches on the training device (CPU or CUDA).

Same pipeline and parameter distributions as :class:`dinov2.data.DataAugmentationDINO` (the
per-image reference), but every crop of a batch is produced by a handful of batched operations with
**per-crop** parameters drawn from one ``torch.Generator``:

  random resized crop (bicubic, antialias) + flip  -> :mod:`dinov2.data.batched_crop` (our kernel);
  colour jitter 0.4/0.4/0.2/0.1, p 0.8, each crop its own random order of the four adjustments;
  grayscale p 0.2; Gaussian blur (kernel 9, sigma U(0.1, 2)) with the configured probabilities;
  solarise 128 on global crop 2; normalise.

The blur is ``kornia``'s (per-sample sigma, torchvision's kernel and reflect padding).
kornia's ``ColorJitter`` itself is not used: it draws one order of the four adjustments per batch,
where torchvision draws one per image. We apply the adjustments in four rounds (in round ``k`` each
crop gets the ``k``-th adjustment of its own order), brightness, contrast and saturation of a round
as one fused blend over all crops: on small crops the per-call overhead of 16 subset calls cost
more than the arithmetic.

Unlike the reference, which rounds to uint8 after every operation, the pixels stay float32 from the
resize on (differences of at most a few 1/255 steps; the tests bound them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kornia
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .augmentations import check_probabilities
from .batched_crop import RaggedImages, resized_crop, sample_resized_crop_boxes
from .transforms import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ToRGBImage

logger = logging.getLogger("dinov2")

# Reference parameters (official DINOv2 / DataAugmentationDINO).
FLIP_P = 0.5
JITTER_P, GRAYSCALE_P = 0.8, 0.2
JITTER_RANGES = (
    (0.6, 1.4),
    (0.6, 1.4),
    (0.8, 1.2),
    (-0.1, 0.1),
)  # brightness, contrast, saturation, hue
BLUR_KERNEL, BLUR_SIGMA = 9, (0.1, 2.0)
SOLARIZE_THRESHOLD = 128 / 255  # the reference solarises uint8 pixels >= 128


def _adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Torchvision's ``adjust_hue`` (RGB -> HSV, hue + factor turns, -> RGB) for (N, 3, H, W),
    factor (N,).

    The way back uses the closed form of the HSV sectors, ``c = V - V * S * clamp(min(k, 4 - k), 0,
    1)`` with ``k = (n_c + 6 h) mod 6``, ``n = (5, 3, 1)`` for (r, g, b): a third of the operations
    of a sector-by-sector conversion (kornia's), the same values.
    """
    r, g, b = x.unbind(-3)
    maxc, minc = x.amax(-3), x.amin(-3)
    chroma = maxc - minc  # = V * S
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.remainder(hue / 6.0 + 1.0 + factor[:, None, None], 1.0)
    k = torch.remainder(_HUE_OFFSETS.to(x.device) + 6.0 * hue[:, None], 6.0)
    return maxc[:, None] - chroma[:, None] * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


_HUE_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)


# torchvision's grayscale weights (rgb_to_grayscale), used by its contrast and saturation
# adjustments.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


@dataclass
class CropParams:
    """Per-crop parameters of ``N`` crops (all on the CPU; drawn by :func:`sample_crop_params`).

    ``boxes`` (N, 4) int64 (top, left, height, width); ``flip``, ``jitter``, ``grayscale``,
    ``blur``, ``solarize`` (N,) bool; ``jitter_factors`` (N, 4) (brightness, contrast, saturation,
    hue); ``jitter_order`` (N, 4) a permutation of 0..3 per crop; ``blur_sigma`` (N,).
    """

    boxes: Tensor
    flip: Tensor
    jitter: Tensor
    jitter_factors: Tensor
    jitter_order: Tensor
    grayscale: Tensor
    blur: Tensor
    blur_sigma: Tensor
    solarize: Tensor


def sample_crop_params(
    sizes: Tensor,
    scale: Sequence[float],
    blur_p: Tensor,
    solarize_p: Tensor,
    generator: torch.Generator | None = None,
) -> CropParams:
    """Parameters of ``N`` independent crops of images of ``sizes`` (N, 2);
    ``blur_p``/``solarize_p`` (N,)."""
    n = len(sizes)

    def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
        return torch.empty(*shape).uniform_(low, high, generator=generator)

    boxes = sample_resized_crop_boxes(sizes, scale, generator=generator)
    flip = uniform(n) < FLIP_P
    jitter = uniform(n) < JITTER_P
    jitter_factors = torch.stack([uniform(n, low=lo, high=hi) for lo, hi in JITTER_RANGES], 1)
    jitter_order = torch.argsort(uniform(n, 4), dim=1)  # uniform random permutation per crop
    grayscale = uniform(n) < GRAYSCALE_P
    blur = uniform(n) < blur_p
    blur_sigma = uniform(n, low=BLUR_SIGMA[0], high=BLUR_SIGMA[1])
    solarize = uniform(n) < solarize_p
    return CropParams(
        boxes, flip, jitter, jitter_factors, jitter_order, grayscale, blur, blur_sigma, solarize
    )


def _apply_to(x: Tensor, selected: Tensor, fn: Callable[..., Tensor], *args: Tensor) -> None:
    """``x[selected] = fn(x[selected], *args[selected])`` in place; ``selected`` (N,) bool on the
    CPU."""
    index = selected.nonzero().squeeze(1)
    if len(index) == 0:
        return
    device_index = index.to(x.device)
    x[device_index] = fn(x[device_index], *(a[index].to(x.device) for a in args))


def _gray(x: Tensor) -> Tensor:
    r, g, b = x.unbind(-3)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(-3)


def color_jitter_(x: Tensor, params: CropParams) -> None:
    """Torchvision's ``RandomApply([ColorJitter(0.4, 0.4, 0.2, 0.1)], p)`` per crop, in place on (N,
    3, H, W).

    Brightness, contrast and saturation are torchvision's blends ``clamp(f * x + (1 - f) * target)``
    with target 0, the crop's grayscale mean, or its grayscale image; in each round one fused blend
    serves all crops (factor 1 for a crop whose adjustment of that round is another one), the hue
    shift runs on the crops whose round it is.
    """
    device = x.device
    factors = params.jitter_factors.to(device)
    for step in range(4):
        op = torch.where(params.jitter, params.jitter_order[:, step], -1).to(device)
        blend = (op >= 0) & (op != HUE)
        factor = torch.where(blend, factors.gather(1, op.clamp(min=0)[:, None]).squeeze(1), 1.0)[
            :, None, None, None
        ]
        gray = _gray(x)
        target = torch.where(
            (op == CONTRAST)[:, None, None, None],
            gray.mean((-3, -2, -1), keepdim=True),
            torch.where((op == SATURATION)[:, None, None, None], gray, 0.0),
        )
        x.mul_(factor).add_((1 - factor) * target).clamp_(0, 1)
        _apply_to(
            x,
            params.jitter & (params.jitter_order[:, step] == HUE),
            _adjust_hue,
            params.jitter_factors[:, HUE],
        )


def _to_gray3(x: Tensor) -> Tensor:
    return _gray(x).expand(-1, 3, -1, -1)


def _blur(x: Tensor, sigma: Tensor) -> Tensor:
    return kornia.filters.gaussian_blur2d(
        x, BLUR_KERNEL, torch.stack([sigma, sigma], 1), border_type="reflect"
    )


def augment_crops(
    images: RaggedImages, index: Tensor, params: CropParams, size: int, mean: Tensor, std: Tensor
) -> Tensor:
    """Normalised float32 crops (N, 3, size, size) of images ``index`` (N,) with ``params``."""
    x = resized_crop(images, index, params.boxes, params.flip, size)
    color_jitter_(x, params)
    _apply_to(x, params.grayscale, _to_gray3)
    _apply_to(x, params.blur, _blur, params.blur_sigma)
    solarize = params.solarize.to(x.device)[:, None, None, None]
    x = torch.where(solarize & (x >= SOLARIZE_THRESHOLD), 1 - x, x)
    return (x - mean) / std


class DecodedImage:
    """Worker-side transform of the batched path: decode only -> ``{"image": uint8 (3, H, W)}``
    (``"paired_image"`` too for a paired dataset); the augmentation runs later on whole batches."""

    def __init__(self) -> None:
        self.to_image = ToRGBImage()

    def _to_tensor(self, image: Any) -> Tensor:
        if isinstance(image, Image.Image) and image.mode == "RGB":
            # The datasets' decoder yields RGB PIL images; this is 5x cheaper than v2.ToImage on
            # 28-px digits.
            return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        return self.to_image(image).as_subclass(Tensor)

    def __call__(self, image: Any, paired_image: Any | None = None) -> dict[str, Tensor]:
        if paired_image is None:
            return {"image": self._to_tensor(image)}
        image, paired_image = self._to_tensor(image), self._to_tensor(paired_image)
        if image.shape != paired_image.shape:
            raise ValueError(
                f"paired image shape {tuple(paired_image.shape)} differs from "
                f"image shape {tuple(image.shape)}; "
                "the denoised image must have the same height and width as the noisy one"
            )
        return {"image": image, "paired_image": paired_image}


class BatchedDataAugmentationDINO:
    """Multi-crop augmentation of a batch of decoded uint8 images (same arguments as
    ``DataAugmentationDINO``).

    ``__call__(images, generator, paired=None)`` with ``B`` images returns:
      ``global_crops``: float32 (2B, 3, Gs, Gs), crop-major (all images' crop 1, then all crop 2);
      ``local_crops``: float32 (n_local * B, 3, Ls, Ls), crop-major;
      ``global_crops_paired`` (with ``paired``, images of the same sizes): the global crops of
      ``paired`` with exactly the parameters of ``global_crops``.
    All outputs are on the device of ``images``; the parameters come from ``generator`` (CPU).
    """

    def __init__(
        self,
        global_crops_scale: Sequence[float],
        local_crops_scale: Sequence[float],
        local_crops_number: int,
        global_crops_size: int = 224,
        local_crops_size: int = 96,
        *,
        global_crops_1_blur_p: float = 0.0,
        global_crops_2_blur_p: float = 0.9,
        local_crops_blur_p: float = 0.5,
        global_crops_2_solarize_p: float = 0.2,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
    ):
        check_probabilities(
            global_crops_1_blur_p=global_crops_1_blur_p,
            global_crops_2_blur_p=global_crops_2_blur_p,
            local_crops_blur_p=local_crops_blur_p,
            global_crops_2_solarize_p=global_crops_2_solarize_p,
        )
        self.global_crops_scale = tuple(global_crops_scale)
        self.local_crops_scale = tuple(local_crops_scale)
        self.local_crops_number = local_crops_number
        self.global_crops_size = global_crops_size
        self.local_crops_size = local_crops_size
        self.global_blur_p = (global_crops_1_blur_p, global_crops_2_blur_p)
        self.local_crops_blur_p = local_crops_blur_p
        self.global_crops_2_solarize_p = global_crops_2_solarize_p
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def sample_params(
        self, sizes: Tensor, generator: torch.Generator | None = None
    ) -> tuple[CropParams, CropParams]:
        """``(global, local)`` parameters for images of ``sizes`` (B, 2), crop-major like the
        outputs."""
        b = len(sizes)
        global_params = sample_crop_params(
            sizes.repeat(2, 1),
            self.global_crops_scale,
            blur_p=torch.tensor(self.global_blur_p).repeat_interleave(b),
            solarize_p=torch.tensor([0.0, self.global_crops_2_solarize_p]).repeat_interleave(b),
            generator=generator,
        )
        n_local = b * self.local_crops_number
        local_params = sample_crop_params(
            sizes.repeat(self.local_crops_number, 1),
            self.local_crops_scale,
            blur_p=torch.full((n_local,), self.local_crops_blur_p),
            solarize_p=torch.zeros(n_local),
            generator=generator,
        )
        return global_params, local_params

    def __call__(
        self,
        images: RaggedImages,
        generator: torch.Generator | None = None,
        paired: RaggedImages | None = None,
    ) -> dict[str, Tensor]:
        b = len(images)
        if paired is not None and not torch.equal(paired.sizes.cpu(), images.sizes.cpu()):
            raise ValueError(
                "paired images differ in size from the images; each denoised "
                "image needs its noisy size"
            )
        global_params, local_params = self.sample_params(images.sizes.cpu(), generator)
        mean, std = self.mean.to(images.flat.device), self.std.to(images.flat.device)
        global_index = torch.arange(b).repeat(2)
        output = {
            "global_crops": augment_crops(
                images, global_index, global_params, self.global_crops_size, mean, std
            ),
            "local_crops": augment_crops(
                images,
                torch.arange(b).repeat(self.local_crops_number),
                local_params,
                self.local_crops_size,
                mean,
                std,
            ),
        }
        if paired is not None:
            output["global_crops_paired"] = augment_crops(
                paired, global_index, global_params, self.global_crops_size, mean, std
            )
        return output
