"""Backbones with the official DINOv2 names (``vit_small`` ... ``vit_giant2``)."""

from dinov2.models.vision_transformer import (
    DinoVisionTransformer,
    vit_base,
    vit_giant2,
    vit_large,
    vit_small,
    vit_tiny,
)

__all__ = ["DinoVisionTransformer", "vit_base", "vit_giant2", "vit_large", "vit_small", "vit_tiny"]
