"""DINOv2 multi-crop augmentation, with optional paired (noisy / denoised) global crops for NCT."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from torchvision.transforms import v2

from .transforms import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    GaussianBlur,
    ToRGBImage,
    make_normalize_transform,
)

logger = logging.getLogger("dinov2")


def check_probabilities(**probabilities: float) -> None:
    """``ValueError`` naming the first argument that is not a probability (the crops.* config
    keys)."""
    for name, p in probabilities.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name}={p} is not a probability; use a value in [0, 1]")


class DataAugmentationDINO:
    """Two global crops for teacher and student, ``local_crops_number`` local crops for the student.

    Pipelines (as official DINOv2, on uint8 tensors, normalised last):
      geometry: RandomResizedCrop(bicubic) + horizontal flip p=0.5;
      colour:   ColorJitter(0.4, 0.4, 0.2, 0.1) with p=0.8, then grayscale p=0.2;
      extra:    global crop 1: blur ``global_crops_1_blur_p``;
                global crop 2: blur ``global_crops_2_blur_p`` then solarize(128)
                ``global_crops_2_solarize_p``; local crops:   blur ``local_crops_blur_p``.

    The blur probabilities are *effective* probabilities (chance that a crop is blurred). Their
    defaults 0.0 / 0.9 / 0.5 reproduce what the official code actually does: it writes
    ``GaussianBlur(p=1.0)``, ``GaussianBlur(p=0.1)`` and ``GaussianBlur(p=0.5)``, but its
    ``GaussianBlur`` hands ``1 - p`` to ``RandomApply``, so global crop 1 is never blurred and
    global crop 2 is blurred 90% of the time. Solarisation (0.2) is applied to global crop 2 only.

    ``__call__(image, paired_image=None)`` returns a dict:
      ``global_crops``: 2 tensors float32 (3, global_crops_size, global_crops_size);
      ``global_crops_teacher``: the same two tensors;
      ``local_crops``: ``local_crops_number`` tensors float32 (3, local_crops_size,
      local_crops_size); ``offsets``: () (official placeholder); ``global_crops_paired`` (only with
      ``paired_image``): the two global crops of the paired image with exactly the same crop box,
      flip, colour-jitter factors and order, grayscale, blur sigma and solarisation as
      ``global_crops``.
    Randomness comes from torch's global RNG, so ``torch.manual_seed`` reproduces the crops.
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
        logger.info(
            "DINO augmentation: global %s @ %d, %d local %s @ %d, blur p "
            "g1=%.2f g2=%.2f local=%.2f, solarize g2=%.2f",
            self.global_crops_scale,
            global_crops_size,
            local_crops_number,
            self.local_crops_scale,
            local_crops_size,
            global_crops_1_blur_p,
            global_crops_2_blur_p,
            local_crops_blur_p,
            global_crops_2_solarize_p,
        )

        self.to_image = ToRGBImage()
        self.geometric_augmentation_global = self._geometry(
            global_crops_size, self.global_crops_scale
        )
        self.geometric_augmentation_local = self._geometry(local_crops_size, self.local_crops_scale)
        color_jittering = v2.Compose(
            [
                v2.RandomApply(
                    [v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)], p=0.8
                ),
                v2.RandomGrayscale(p=0.2),
            ]
        )
        self.normalize = make_normalize_transform(mean=mean, std=std)
        self.global_transfo1 = v2.Compose(
            [color_jittering, GaussianBlur(p=global_crops_1_blur_p), self.normalize]
        )
        self.global_transfo2 = v2.Compose(
            [
                color_jittering,
                GaussianBlur(p=global_crops_2_blur_p),
                v2.RandomSolarize(threshold=128, p=global_crops_2_solarize_p),
                self.normalize,
            ]
        )
        self.local_transfo = v2.Compose(
            [color_jittering, GaussianBlur(p=local_crops_blur_p), self.normalize]
        )

    @staticmethod
    def _geometry(size: int, scale: tuple[float, ...]) -> v2.Compose:
        return v2.Compose(
            [
                v2.RandomResizedCrop(
                    size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC, antialias=True
                ),
                v2.RandomHorizontalFlip(p=0.5),
            ]
        )

    def _global_crops(self, *images) -> list:
        """The two global crops of ``images`` (one image, or a (noisy, denoised) pair -> pairs).

        Each v2 transform samples its parameters once per call and applies them to every image
        of the call, so passing (noisy, denoised) together yields identically augmented crops.
        """
        crops = []
        for transfo in (self.global_transfo1, self.global_transfo2):
            base = self.geometric_augmentation_global(*images)
            crops.append(transfo(*base) if len(images) > 1 else transfo(base))
        return crops

    def __call__(self, image: Any, paired_image: Any | None = None) -> dict[str, Any]:
        output: dict[str, Any] = {}
        if paired_image is None:
            image = self.to_image(image)
            global_crops = self._global_crops(image)
        else:
            image, paired_image = self.to_image(image, paired_image)
            if image.shape != paired_image.shape:
                raise ValueError(
                    f"paired image shape {tuple(paired_image.shape)} differs from "
                    f"image shape {tuple(image.shape)}; "
                    "the denoised image must have the same height and width as the noisy one"
                )
            pairs = self._global_crops(image, paired_image)
            global_crops = [noisy for noisy, _ in pairs]
            output["global_crops_paired"] = [denoised for _, denoised in pairs]

        output["global_crops"] = global_crops
        output["global_crops_teacher"] = global_crops
        output["local_crops"] = [
            self.local_transfo(self.geometric_augmentation_local(image))
            for _ in range(self.local_crops_number)
        ]
        output["offsets"] = ()
        return output
