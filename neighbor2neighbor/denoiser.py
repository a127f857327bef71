"""Denoise tensors and single images with a trained Neighbor2Neighbor UNet.

Python API (the denoise stage, the retrieval stage and the noise-grid figure use it)::

    den = Denoiser.from_checkpoint("outputs/runs/demo/gauss_100/n2n/model_best.pth")
    y = den(x)                          # float (C, H, W) or (N, C, H, W) in [0, 1] → same shape
    out = den.denoise_image(uint8_img)  # uint8 (H, W), (H, W, 3) or (H, W, 4) → same shape

Whole trees: :mod:`neighbor2neighbor.denoise_tree`; the command: :mod:`neighbor2neighbor.denoise`.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from neighbor2neighbor.checkpoint import load_unet
from neighbor2neighbor.unet import UNet
from utils.runtime import autocast, resolve_device

MULTIPLE = 32  # five 2× pools


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Reflect-pad (N, C, H, W) at the bottom/right up to multiples of ``multiple``.

    ``F.pad`` reflects at most ``side - 1`` pixels at a time, so images smaller than the pad are
    reflected repeatedly (a 1-pixel side is replicated): tiny images work too.
    """
    target_h = -(-x.shape[-2] // multiple) * multiple
    target_w = -(-x.shape[-1] // multiple) * multiple
    while x.shape[-2] < target_h or x.shape[-1] < target_w:
        h, w = x.shape[-2:]
        pad_h, pad_w = min(target_h - h, max(h - 1, 0)), min(target_w - w, max(w - 1, 0))
        if pad_h == 0 and pad_w == 0:  # a 1-pixel side cannot reflect
            return torch.nn.functional.pad(x, (0, target_w - w, 0, target_h - h), mode="replicate")
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


@torch.no_grad()
def denoise_tensor(model: UNet, x: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """Denoise float ``x`` in [0, 1], (C, H, W) or (N, C, H, W), any H and W; returns the same
    shape.

    C = 3 is denoised as is; C = 1 (grayscale) is replicated to RGB and the output averaged back;
    C = 4 (RGBA) denoises RGB and passes alpha through. The image is reflect-padded to multiples
    of 32, denoised on the model's device, cropped back and clamped to [0, 1].
    """
    single = x.dim() == 3
    batch = x[None] if single else x
    if batch.dim() != 4 or batch.shape[1] not in (1, 3, 4):
        raise ValueError(
            "denoise_tensor expects (C, H, W) or (N, C, H, W) with C in 1, 3, 4; "
            f"got {tuple(x.shape)}"
        )
    device = next(model.parameters()).device
    rgb = batch[:, :3] if batch.shape[1] != 1 else batch.expand(-1, 3, -1, -1)
    h, w = rgb.shape[-2:]
    padded = reflect_pad_to_multiple(rgb.to(device=device, dtype=torch.float32))
    with autocast(device, torch.bfloat16 if amp else None):
        out = model(padded)
    out = out[:, :, :h, :w].float().clamp_(0.0, 1.0).to(device=x.device, dtype=x.dtype)
    if batch.shape[1] == 1:
        out = out.mean(dim=1, keepdim=True)
    elif batch.shape[1] == 4:
        out = torch.cat([out, batch[:, 3:]], dim=1)
    return out[0] if single else out


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float (..., C, H, W) in [0, 1] → uint8 (..., H, W, C), rounding as the reference (``+ 0.5``,
    clip)."""
    scaled = (x.detach().float().cpu() * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
    return scaled.movedim(-3, -1).numpy()


class Denoiser:
    """A UNet on a device, with the batching/padding rules of :func:`denoise_tensor`."""

    def __init__(self, model: UNet, device: str | torch.device = "auto", amp: bool = False) -> None:
        self.device = (
            resolve_device(device, "denoise.device") if isinstance(device, str) else device
        )
        self.model = model.to(self.device).eval()
        self.amp = amp

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "auto", amp: bool = False
    ) -> Denoiser:
        """Load our model file, a training state or published Neighbor2Neighbor weights."""
        return cls(load_unet(path), device=device, amp=amp)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return denoise_tensor(self.model, x, amp=self.amp)

    def denoise_image(self, image: np.ndarray | Image.Image) -> np.ndarray:
        """uint8 (H, W), (H, W, 3) or (H, W, 4) array or PIL image → uint8 array of the same
        shape."""
        if isinstance(image, Image.Image) and image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert(
                "RGBA" if "A" in image.getbands() else "RGB"
            )  # palette, LA, CMYK, ...
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise TypeError(f"denoise_image expects uint8 pixels, got {arr.dtype}")
        chw = torch.from_numpy(np.array(arr if arr.ndim == 3 else arr[..., None])).permute(2, 0, 1)
        out = to_uint8(self(chw.float().div_(255.0)))
        if arr.ndim == 3 and arr.shape[2] == 4:
            out[..., 3] = arr[..., 3]  # alpha is copied exactly, not round-tripped through floats
        return out if arr.ndim == 3 else out[..., 0]
