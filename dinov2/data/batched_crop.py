"""Random resized crops of a whole batch of images of different sizes, on any device.

Why our own kernel and not ``kornia.augmentation.RandomResizedCrop``: the reference pipeline
(torchvision ``RandomResizedCrop(bicubic, antialias=True)``) resamples with PIL's antialiased
bicubic filter (a = -0.5, support widened by the downscale factor), while kornia resizes without
antialiasing and needs a batch of equally sized images. Here each crop is a separable linear map:
``out = Wy @ box @ Wx^T`` with per-crop weight matrices that reproduce PyTorch's
``interpolate(mode="bicubic", antialias=True)`` (itself PIL's algorithm), and a flip is the
column-reversed ``Wx``. Images travel as one flat uint8 buffer (:class:`RaggedImages`): no padding
to the largest image of the batch, and the host-to-device copy is exactly the decoded bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

N_CROP_ATTEMPTS = 10  # torchvision RandomResizedCrop.get_params tries 10 boxes before its fallback
DEFAULT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
_MAX_GATHER = 1 << 24  # crop pixels gathered at once (bounds the index tensor to 64-128 MiB)
_SMALL_GATHER, _MAX_PADDING = 1 << 18, 1.5  # see _plan_chunks


@dataclass
class RaggedImages:
    """``N`` uint8 RGB images of different sizes in one buffer.

    ``flat``: uint8 ``(sum_n 3 * H_n * W_n,)``, image ``n`` is ``flat[offsets[n]:].view(3, H_n,
    W_n)``; ``sizes``: int64 ``(N, 2)`` = ``(H_n, W_n)``; ``offsets``: int64 ``(N,)``.
    """

    flat: Tensor
    sizes: Tensor
    offsets: Tensor

    @classmethod
    def from_images(cls, images: Sequence[Tensor]) -> RaggedImages:
        """From uint8 ``(3, H, W)`` tensors."""
        sizes = torch.tensor([list(im.shape[-2:]) for im in images], dtype=torch.long).reshape(
            -1, 2
        )
        numels = 3 * sizes[:, 0] * sizes[:, 1]
        offsets = torch.cumsum(numels, 0) - numels
        flat = (
            torch.cat([im.reshape(-1) for im in images])
            if images
            else torch.empty(0, dtype=torch.uint8)
        )
        return cls(flat, sizes, offsets)

    def __len__(self) -> int:
        return len(self.sizes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RaggedImages:
        return RaggedImages(
            *(
                t.to(device, non_blocking=non_blocking)
                for t in (self.flat, self.sizes, self.offsets)
            )
        )

    def image(self, n: int) -> Tensor:
        """Image ``n`` as a uint8 ``(3, H, W)`` view."""
        h, w = (int(v) for v in self.sizes[n])
        start = int(self.offsets[n])
        return self.flat[start : start + 3 * h * w].view(3, h, w)


def sample_resized_crop_boxes(
    sizes: Tensor,
    scale: Sequence[float],
    ratio: Sequence[float] = DEFAULT_RATIO,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Boxes ``(N, 4)`` int64 ``(top, left, height, width)``, one per image size in ``sizes`` ``(N,
    2)``.

    The algorithm of torchvision's ``RandomResizedCrop.get_params``, drawn for all images at once:
    up to 10 attempts of area fraction U(scale) and log-uniform aspect ratio in ``ratio``; the first
    box that fits is placed uniformly; if none fits, the largest centred box with a clamped ratio.
    """
    sizes = sizes.to("cpu", torch.long)
    n = len(sizes)
    height, width = sizes[:, 0:1].double(), sizes[:, 1:2].double()
    area = height * width
    target_area = area * torch.empty(n, N_CROP_ATTEMPTS, dtype=torch.float64).uniform_(
        *scale, generator=generator
    )
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(
        torch.empty(n, N_CROP_ATTEMPTS, dtype=torch.float64).uniform_(
            *log_ratio, generator=generator
        )
    )
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # index of the first fitting attempt
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    u_top, u_left = torch.rand(2, n, dtype=torch.float64, generator=generator)

    # Fallback (no attempt fits): centred crop, aspect ratio clamped to ``ratio`` (torchvision).
    height, width = height.squeeze(1), width.squeeze(1)
    in_ratio = width / height
    fb_w = torch.where(in_ratio > ratio[1], torch.round(height * ratio[1]), width)
    fb_h = torch.where(in_ratio < ratio[0], torch.round(width / ratio[0]), height)
    found = fits.any(1)
    h, w = torch.where(found, h, fb_h), torch.where(found, w, fb_w)
    top = torch.where(
        found,
        torch.floor(u_top * (height - h + 1)),
        torch.div(height - h, 2, rounding_mode="floor"),
    )
    left = torch.where(
        found, torch.floor(u_left * (width - w + 1)), torch.div(width - w, 2, rounding_mode="floor")
    )
    return torch.stack([top, left, h, w], 1).long()


def _bicubic_aa(x: Tensor) -> Tensor:
    """PIL's bicubic filter (a = -0.5), as PyTorch's antialiased bicubic uses."""
    a = -0.5
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def antialias_bicubic_weights(lengths: Tensor, out_size: int, max_length: int) -> Tensor:
    """Resampling matrices ``(N, out_size, max_length)`` from ``lengths[n]`` input pixels to
    ``out_size``.

    Row ``i`` holds the normalised filter taps of output pixel ``i`` (PyTorch's antialiased bicubic:
    centre ``scale * (i + 0.5)``, support ``2 * max(scale, 1)``); columns ``>= lengths[n]`` are
    zero.
    """
    scale = (lengths.to(torch.float32) / out_size)[:, None, None]  # (N, 1, 1)
    inv_scale = torch.where(scale >= 1, 1 / scale, torch.ones_like(scale))
    centre = scale * (
        torch.arange(out_size, dtype=torch.float32, device=lengths.device)[None, :, None] + 0.5
    )
    pixels = torch.arange(max_length, dtype=torch.float32, device=lengths.device)[None, None, :]
    weights = _bicubic_aa((pixels + 0.5 - centre) * inv_scale)
    weights = weights * (pixels < lengths[:, None, None])
    return weights / weights.sum(-1, keepdim=True)


def _gather_boxes(
    images: RaggedImages, index: Tensor, boxes: Tensor, box_h: int, box_w: int
) -> Tensor:
    """uint8 ``(n, 3, box_h, box_w)``: the boxes of images ``index``; rows/columns past a box repeat
    its edge."""
    top, left, h, w = boxes.unbind(1)
    img_h, img_w = images.sizes[index, 0], images.sizes[index, 1]
    # int32 offsets halve the index traffic; a batch buffer stays far below 2**31 bytes.
    dtype = torch.int32 if images.flat.numel() < 2**31 else torch.int64
    rows = top[:, None] + torch.minimum(
        torch.arange(box_h, device=boxes.device)[None], h[:, None] - 1
    )
    cols = left[:, None] + torch.minimum(
        torch.arange(box_w, device=boxes.device)[None], w[:, None] - 1
    )
    channel_base = (
        images.offsets[index][:, None]
        + torch.arange(3, device=boxes.device)[None] * (img_h * img_w)[:, None]
    )
    row_base = (channel_base[:, :, None] + (rows * img_w[:, None])[:, None, :]).to(
        dtype
    )  # (n, 3, box_h)
    return images.flat[row_base[..., None] + cols.to(dtype)[:, None, None, :]]


def resized_crop(
    images: RaggedImages, index: Tensor, boxes: Tensor, flip: Tensor, size: int
) -> Tensor:
    """Crops ``(n, 3, size, size)`` float32 in [0, 1] of images ``index`` ``(n,)`` at ``boxes``
    ``(n, 4)``.

    Each box is resized with antialiased bicubic resampling (clamped to [0, 1], as the reference
    clamps when it rounds back to uint8); ``flip`` ``(n,)`` bool mirrors a crop horizontally.
    """
    device = images.flat.device
    out = torch.empty(len(index), 3, size, size, device=device)
    for chunk_cpu in _plan_chunks(boxes.cpu()):
        chunk = chunk_cpu.to(device)
        box_h, box_w = (int(v) for v in boxes[chunk_cpu, 2:].cpu().amax(0))
        crop_boxes = boxes[chunk_cpu].to(device)
        n = len(chunk_cpu)
        pixels = _gather_boxes(
            images, index[chunk_cpu].to(device), crop_boxes, box_h, box_w
        ).float()
        wy = (
            antialias_bicubic_weights(crop_boxes[:, 2], size, box_h) / 255
        )  # uint8 -> [0, 1] folded in
        wx = antialias_bicubic_weights(crop_boxes[:, 3], size, box_w)
        wx = torch.where(flip[chunk_cpu].to(device)[:, None, None], wx.flip(1), wx)
        # Two batched matrix products, columns then rows: (n, 3 * H, W) @ (n, W, S), then (n, S, H)
        # @ (n, H, 3 * S).
        cols = torch.bmm(pixels.view(n, 3 * box_h, box_w), wx.transpose(1, 2))
        cols = cols.view(n, 3, box_h, size).transpose(1, 2).reshape(n, box_h, 3 * size)
        out[chunk] = torch.bmm(wy, cols).view(n, size, 3, size).transpose(1, 2).clamp_(0, 1)
    return out


def _plan_chunks(boxes: Tensor) -> list[Tensor]:
    """Crop indices grouped by box area. A group's boxes are padded to its largest height and width:
    a group stays within ``_MAX_GATHER`` pixels, and once past ``_SMALL_GATHER`` pixels (where the
    arithmetic outweighs the per-group overhead) within ``_MAX_PADDING`` times its smallest box
    area."""
    order = torch.argsort(boxes[:, 2] * boxes[:, 3]).tolist()
    hw = boxes[:, 2:].tolist()
    chunks: list[list[int]] = []
    current: list[int] = []
    max_h = max_w = smallest = 0
    for i in order:
        h, w = max(max_h, hw[i][0]), max(max_w, hw[i][1])
        padded = (len(current) + 1) * 3 * h * w
        wasteful = padded > _SMALL_GATHER and h * w > _MAX_PADDING * smallest
        if current and (padded > _MAX_GATHER or wasteful):
            chunks.append(current)
            current, (h, w) = [], hw[i]
        if not current:
            smallest = hw[i][0] * hw[i][1]
        current.append(i)
        max_h, max_w = h, w
    if current:
        chunks.append(current)
    return [torch.tensor(c, dtype=torch.long) for c in chunks]
