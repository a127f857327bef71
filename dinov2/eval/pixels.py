"""Raw pixels as a frozen "backbone": the reference row that tells what pretraining adds.

:class:`PixelBackbone` has the two entry points the evaluations call on a DINOv2 backbone, so the
kNN, the linear probe (fast and protocol mode), retrieval and the noise sweep evaluate raw pixels
through exactly the code that evaluates a teacher:

- ``model(x)``: ``x`` ``(B, 3, H, W)`` normalised pixels → ``(B, 3 * H * W)`` (kNN and retrieval
  L2-normalise it, as they do CLS tokens);
- ``model.get_intermediate_layers(x, n, return_class_token=True)``: ``n`` identical
  ``(patch tokens (B, 1, 3HW), class token (B, 3HW))`` pairs (linear probe inputs).

Only cheap for small images: :data:`MAX_PIXEL_SIDE` bounds the evaluated crop (larger: the row is
n/a). A training config selects it with ``student.arch: pixels`` and the evaluated crop size in
``crops.global_crops_size`` (written by ``python -m dinov2.run.reference``).
"""

from __future__ import annotations

from torch import Tensor, nn

PIXELS_ARCH = "pixels"
MAX_PIXEL_SIDE = 64  # 3 x 64 x 64 = 12288 features: kNN and linear heads stay cheap


class PixelBackbone(nn.Module):
    """Identity feature extractor on ``image_size`` × ``image_size`` RGB crops (no parameters)."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        if not 0 < image_size <= MAX_PIXEL_SIDE:
            raise ValueError(
                f"raw-pixel features need crops of at most {MAX_PIXEL_SIDE} px, got {image_size}; "
                "the raw-pixel row is only computed for small images (eval.crop_size)"
            )
        self.image_size = image_size
        self.embed_dim = 3 * image_size * image_size

    def _flat(self, x: Tensor) -> Tensor:
        if x.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(
                f"PixelBackbone expects (B, 3, {self.image_size}, {self.image_size}) crops, "
                f"got {tuple(x.shape)}"
            )
        return x.flatten(1).float()

    def forward(self, x: Tensor) -> Tensor:
        return self._flat(x)

    def get_intermediate_layers(
        self, x: Tensor, n: int = 1, return_class_token: bool = True, **_: object
    ) -> tuple[tuple[Tensor, Tensor], ...] | tuple[Tensor, ...]:
        flat = self._flat(x)
        if not return_class_token:
            return tuple(flat.unsqueeze(1) for _ in range(n))
        return tuple((flat.unsqueeze(1), flat) for _ in range(n))
