"""Per-sample random views of a batch of digits, as torchvision v2 defines them, in 2 grid samples.

A view is ``RandomResizedCrop(28, scale=(0.8, 1))`` then
``RandomAffine(15, translate=(0.1, 0.1), scale=(0.95, 1.05), shear=10)``. torchvision v2 applied to
a batch tensor draws ONE set of parameters for the whole batch; here every sample gets its own,
drawn exactly as ``make_params`` of those transforms draws them (including the 10-attempt crop
rejection loop and its centre-crop fallback), and the image is resampled exactly as their tensor
kernels do (bilinear resize with edge clamping; nearest-neighbour affine around the image centre,
zero fill). ``tests/toy_mnist/test_augment.py`` checks the kernels against
``torchvision.transforms.v2.functional`` sample by sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CROP_SCALE = (0.8, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)  # RandomResizedCrop's default
N_CROP_ATTEMPTS = 10  # RandomResizedCrop.make_params tries 10 boxes before falling back
DEGREES = 15.0
TRANSLATE = 0.1
AFFINE_SCALE = (0.95, 1.05)
SHEAR_X = 10.0  # a single shear number means shear_x in [-10, 10] and shear_y = 0


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (high - low) + low


@dataclass
class CropParams:
    """Crop boxes, int64 ``[B]`` each: ``top``, ``left``, ``height``, ``width`` (pixels)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor


@dataclass
class AffineParams:
    """Per-sample ``angle`` (degrees), ``tx``/``ty`` (whole pixels), ``scale``, ``shear_x``
    (degrees): ``[B]``."""

    angle: torch.Tensor
    tx: torch.Tensor
    ty: torch.Tensor
    scale: torch.Tensor
    shear_x: torch.Tensor


def sample_crop_params(n: int, size: tuple[int, int], g: torch.Generator) -> CropParams:
    """``n`` boxes drawn as ``RandomResizedCrop.make_params`` does for an image of
    ``size = (H, W)``."""
    height, width = size
    area = height * width
    target = area * _uniform(n * N_CROP_ATTEMPTS, *CROP_SCALE, g).view(n, N_CROP_ATTEMPTS)
    log_ratio = _uniform(n * N_CROP_ATTEMPTS, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), g)
    aspect = log_ratio.exp().view(n, N_CROP_ATTEMPTS)
    w = torch.sqrt(target * aspect).round().long()
    h = torch.sqrt(target / aspect).round().long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.long().argmax(dim=1)  # first valid attempt (0 when none; overridden below)
    w = w.gather(1, first[:, None])[:, 0]
    h = h.gather(1, first[:, None])[:, 0]
    found = ok.any(dim=1)
    # fallback: the image's aspect (1 for digits) lies inside CROP_RATIO, so the whole image
    w = torch.where(found, w, torch.full_like(w, width))
    h = torch.where(found, h, torch.full_like(h, height))
    # randint(0, H - h + 1) per sample
    top = (torch.rand(n, generator=g, dtype=torch.float64) * (height - h + 1)).floor().long()
    left = (torch.rand(n, generator=g, dtype=torch.float64) * (width - w + 1)).floor().long()
    return CropParams(top, left, h, w)


def sample_affine_params(n: int, size: tuple[int, int], g: torch.Generator) -> AffineParams:
    """``n`` parameter sets drawn as ``RandomAffine.make_params`` does for an image of
    ``size = (H, W)``."""
    height, width = size
    angle = _uniform(n, -DEGREES, DEGREES, g)
    tx = _uniform(n, -TRANSLATE * width, TRANSLATE * width, g).round()
    ty = _uniform(n, -TRANSLATE * height, TRANSLATE * height, g).round()
    scale = _uniform(n, *AFFINE_SCALE, g)
    shear_x = _uniform(n, -SHEAR_X, SHEAR_X, g)
    return AffineParams(angle, tx, ty, scale, shear_x)


def _crop_axis(start: torch.Tensor, length: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
    """Normalised input coordinates ``[B, n_out]`` of a bilinear resize of
    ``[start, start + length)``.

    Pixel-space source ``(u + 0.5) * length / n_out - 0.5`` clamped to the crop, as ``interpolate``
    clamps to the crop's edge; then mapped to grid_sample's ``align_corners=False`` convention.
    """
    u = torch.arange(n_out, dtype=torch.float64)
    src = (u[None] + 0.5) * (length[:, None] / n_out) - 0.5
    src = torch.minimum(src.clamp_min(0.0), (length[:, None] - 1).double()) + start[:, None]
    return (2.0 * src + 1.0) / n_in - 1.0


def resized_crop(x: torch.Tensor, p: CropParams, out_size: int) -> torch.Tensor:
    """Crop each ``[B, H, W]`` image to its box and resize it bilinearly to
    ``[B, out_size, out_size]``."""
    height, width = x.shape[-2:]
    gx = _crop_axis(p.left, p.width, out_size, width)  # [B, out]
    gy = _crop_axis(p.top, p.height, out_size, height)
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    grid = grid.to(device=x.device, dtype=x.dtype)
    return F.grid_sample(
        x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )[:, 0]


def _inverse_affine_theta(p: AffineParams) -> torch.Tensor:
    """``[B, 2, 3]`` output→input maps about the centre, the formula of torchvision's inverse affine
    matrix."""
    rot, sx = torch.deg2rad(p.angle), torch.deg2rad(p.shear_x)
    # RotateScaleShear with shear_y = 0; its inverse is [[d, -b], [-c, a]] / scale (det = 1)
    a, c = torch.cos(rot), torch.sin(rot)
    b = -torch.cos(rot) * torch.tan(sx) - torch.sin(rot)
    d = -torch.sin(rot) * torch.tan(sx) + torch.cos(rot)
    m00, m01, m10, m11 = d / p.scale, -b / p.scale, -c / p.scale, a / p.scale
    m02 = m00 * -p.tx + m01 * -p.ty
    m12 = m10 * -p.tx + m11 * -p.ty
    return torch.stack([m00, m01, m02, m10, m11, m12], dim=1).view(-1, 2, 3)


def affine(x: torch.Tensor, p: AffineParams) -> torch.Tensor:
    """Per-sample affine of ``[B, H, W]`` images, nearest neighbour, zero fill (RandomAffine's
    defaults)."""
    n, height, width = x.shape
    theta = _inverse_affine_theta(p).to(dtype=x.dtype, device=x.device)
    # pixel-centred base grid, then scaled to [-1, 1] after applying theta (torchvision's
    # _affine_grid)
    xs = torch.linspace(
        (1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=x.device, dtype=x.dtype
    )
    ys = torch.linspace(
        (1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=x.device, dtype=x.dtype
    )
    base = torch.stack(
        [
            xs[None, :].expand(height, width),
            ys[:, None].expand(height, width),
            torch.ones(height, width, device=x.device, dtype=x.dtype),
        ],
        dim=-1,
    )
    half = torch.tensor([0.5 * width, 0.5 * height], device=x.device, dtype=x.dtype)
    grid = base.view(1, height * width, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2) / half)
    grid = grid.view(n, height, width, 2)
    return F.grid_sample(
        x[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=False
    )[:, 0]


def random_view(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random view per digit: ``[B, H, W]`` → ``[B, H, W]``; parameters drawn on the CPU
    generator ``g``."""
    n, height, width = x.shape
    crop = sample_crop_params(n, (height, width), g)
    warp = sample_affine_params(n, (height, width), g)
    return affine(resized_crop(x, crop, height), warp)
