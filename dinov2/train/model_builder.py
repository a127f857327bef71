"""Student and teacher backbones from a training config (official ``build_model_from_cfg``)."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from dinov2.models import vision_transformer as vits

ARCHS = ("vit_pico", "vit_tiny", "vit_small", "vit_base", "vit_large", "vit_giant2")


def vit_pico(
    patch_size: int = 16, num_register_tokens: int = 0, **kwargs
) -> vits.DinoVisionTransformer:
    """Not an official preset: embed 64, depth 4, 4 heads, for CPU tests and the embedded demo
    (a training step on 32x32 crops takes milliseconds on one core)."""
    return vits.DinoVisionTransformer(
        patch_size=patch_size,
        embed_dim=64,
        depth=4,
        num_heads=4,
        mlp_ratio=4,
        num_register_tokens=num_register_tokens,
        **kwargs,
    )


def _constructor(arch: str):
    return vit_pico if arch == "vit_pico" else getattr(vits, arch)


def build_model(args: DictConfig, only_teacher: bool = False, img_size: int = 224):
    """``(student, teacher, embed_dim)`` (or ``(teacher, embed_dim)``) for the ``student`` config
    section.

    Only the student has stochastic depth (``drop_path_rate``), as in the official code.
    """
    arch = args.arch.removesuffix("_memeff")
    if arch not in ARCHS:
        raise ValueError(f"config key 'student.arch' is {args.arch!r}; valid: {', '.join(ARCHS)}")
    vit_kwargs = dict(
        img_size=img_size,
        patch_size=args.patch_size,
        init_values=args.layerscale,
        ffn_layer=args.ffn_layer,
        block_chunks=args.block_chunks,
        qkv_bias=args.qkv_bias,
        proj_bias=args.proj_bias,
        ffn_bias=args.ffn_bias,
        num_register_tokens=args.num_register_tokens,
        interpolate_offset=args.interpolate_offset,
        interpolate_antialias=args.interpolate_antialias,
    )
    teacher: nn.Module = _constructor(arch)(**vit_kwargs)
    if only_teacher:
        return teacher, teacher.embed_dim
    student = _constructor(arch)(
        **vit_kwargs, drop_path_rate=args.drop_path_rate, drop_path_uniform=args.drop_path_uniform
    )
    return student, teacher, student.embed_dim


def build_model_from_cfg(cfg: DictConfig, only_teacher: bool = False):
    """Backbones of ``cfg.student`` for ``cfg.crops.global_crops_size`` images."""
    return build_model(cfg.student, only_teacher=only_teacher, img_size=cfg.crops.global_crops_size)
