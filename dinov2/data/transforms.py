"""Image transforms shared by pretraining and evaluation (torchvision transforms v2).

Every pipeline accepts PIL images, HxWxC uint8 numpy arrays or CxHxW uint8 tensors; the geometric
and colour operations run on uint8 tensors and the image is converted to float and normalised last.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

# timm's names for the ImageNet statistics.
IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)


class GaussianBlur(v2.RandomApply):
    """Blur with probability ``p`` (kernel 9, sigma ~ U(radius_min, radius_max)).

    Unlike the official DINOv2 class of the same name, ``p`` here is the probability that the
    blur IS applied: the official class passes ``1 - p`` to ``RandomApply``, so its
    ``GaussianBlur(p=1.0)`` never blurs. Callers state effective probabilities.
    """

    def __init__(self, *, p: float = 0.5, radius_min: float = 0.1, radius_max: float = 2.0):
        super().__init__([v2.GaussianBlur(kernel_size=9, sigma=(radius_min, radius_max))], p=p)


class ToRGBImage(v2.Transform):
    """PIL / ndarray / tensor -> ``tv_tensors.Image`` (C=3, H, W); grey images are repeated to RGB.

    Inputs must be uint8, or with ``allow_float`` also float in [0, 1] (e.g. images that had
    noise added as float tensors). Wrapping every input as ``tv_tensors.Image`` matters for
    paired calls: v2 transforms treat only the first *plain* tensor of a tuple as an image and
    pass the others through untouched.
    """

    def __init__(self, allow_float: bool = False) -> None:
        super().__init__()
        self.allow_float = allow_float
        self._to_image = v2.ToImage()

    def forward(self, *inputs):
        outputs = tuple(self._to_rgb(self._to_image(x)) for x in inputs)
        return outputs if len(outputs) > 1 else outputs[0]

    def _to_rgb(self, image: tv_tensors.Image) -> tv_tensors.Image:
        if image.dtype != torch.uint8 and not (self.allow_float and image.is_floating_point()):
            expected = "uint8 or float in [0, 1]" if self.allow_float else "uint8"
            raise TypeError(
                f"expected a {expected} image, got dtype {image.dtype}; convert it first"
            )
        if image.shape[-3] == 1:
            image = tv_tensors.wrap(image.expand(3, *image.shape[-2:]).clone(), like=image)
        elif image.shape[-3] != 3:
            raise ValueError(
                f"expected 1 or 3 channels, got an image of shape {tuple(image.shape)}"
            )
        return image


def make_normalize_transform(
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> v2.Compose:
    """uint8 (3, H, W) image -> plain float32 tensor (3, H, W): scaled to [0, 1], then (x - mean) /
    std."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=mean, std=std), v2.ToPureTensor()]
    )


def make_classification_train_transform(
    *,
    crop_size: int = 224,
    interpolation: v2.InterpolationMode = v2.InterpolationMode.BICUBIC,
    hflip_prob: float = 0.5,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> v2.Compose:
    """Random resized crop + flip + normalise -> float32 (3, crop_size, crop_size) (torchvision
    preset)."""
    transforms_list: list = [
        ToRGBImage(allow_float=True),
        v2.RandomResizedCrop(crop_size, interpolation=interpolation, antialias=True),
    ]
    if hflip_prob > 0.0:
        transforms_list.append(v2.RandomHorizontalFlip(hflip_prob))
    transforms_list.append(make_normalize_transform(mean=mean, std=std))
    return v2.Compose(transforms_list)


def make_classification_eval_transform(
    *,
    resize_size: int = 256,
    interpolation: v2.InterpolationMode = v2.InterpolationMode.BICUBIC,
    crop_size: int = 224,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> v2.Compose:
    """Resize shorter side to ``resize_size``, centre crop, normalise -> float32 (3, crop_size,
    crop_size)."""
    return v2.Compose(
        [
            ToRGBImage(allow_float=True),
            v2.Resize(resize_size, interpolation=interpolation, antialias=True),
            v2.CenterCrop(crop_size),
            make_normalize_transform(mean=mean, std=std),
        ]
    )
