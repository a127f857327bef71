"""Pre-norm transformer block with LayerScale and stochastic depth (official keys).

Keys: ``norm1``, ``attn.qkv``, ``attn.proj``, ``ls1.gamma``, ``norm2``, ``mlp.*``, ``ls2.gamma``.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from dinov2.layers.attention import Attention
from dinov2.layers.drop_path import DropPath
from dinov2.layers.layer_scale import LayerScale
from dinov2.layers.mlp import Mlp


def drop_add_residual_stochastic_depth(
    x: Tensor, residual_func: Callable[[Tensor], Tensor], sample_drop_ratio: float = 0.0
) -> Tensor:
    """``x + residual(x)`` where the residual is computed only for a random subset of the batch.

    As in the official code: ``B - int(B * ratio)`` samples keep their branch, scaled by
    ``B / n_kept`` so the expectation is unchanged; the dropped samples cost no compute.
    ``x``: ``(B, N, C)``.
    """
    b = x.shape[0]
    n_kept = max(int(b * (1 - sample_drop_ratio)), 1)
    brange = torch.randperm(b, device=x.device)[:n_kept]
    residual = residual_func(x[brange])
    scale = b / n_kept
    return torch.index_add(
        x.flatten(1), 0, brange, residual.to(x.dtype).flatten(1), alpha=scale
    ).view_as(x)


def _add_scaled(x: Tensor, branch: Tensor, ls: nn.Module) -> Tensor:
    """``x + ls(branch)``; with LayerScale as one fused ``addcmul`` (no full-size temporary)."""
    if isinstance(ls, LayerScale) and not ls.inplace:
        return torch.addcmul(x, branch, ls.gamma)
    return x + ls(branch)


class Block(nn.Module):
    """``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``; ``(B, N, C)`` ->
    ``(B, N, C)``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        init_values: float | None = None,
        drop_path: float = 0.0,
        act_layer: Callable[..., nn.Module] = nn.GELU,
        norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        attn_class: Callable[..., nn.Module] = Attention,
        ffn_layer: Callable[..., nn.Module] = Mlp,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn_class(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            attn_drop=attn_drop,
            proj_drop=drop,
        )
        self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = ffn_layer(
            in_features=dim,
            hidden_features=int(dim * mlp_ratio),
            act_layer=act_layer,
            drop=drop,
            bias=ffn_bias,
        )
        self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.sample_drop_ratio = drop_path

    def _attn_residual(self, x: Tensor) -> Tensor:
        return self.ls1(self.attn(self.norm1(x)))

    def _ffn_residual(self, x: Tensor) -> Tensor:
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.sample_drop_ratio > 0.1:
            # Official trick: above 0.1 the saved compute of skipping dropped samples pays for the
            # gather.
            x = drop_add_residual_stochastic_depth(x, self._attn_residual, self.sample_drop_ratio)
            x = drop_add_residual_stochastic_depth(x, self._ffn_residual, self.sample_drop_ratio)
        elif self.training and self.sample_drop_ratio > 0.0:
            x = x + self.drop_path1(self._attn_residual(x))
            x = x + self.drop_path2(self._ffn_residual(x))
        else:
            x = _add_scaled(x, self.attn(self.norm1(x)), self.ls1)
            x = _add_scaled(x, self.mlp(self.norm2(x)), self.ls2)
        return x


class NestedTensorBlock(Block):
    """A :class:`Block` that also accepts a list of ``(B_i, N_i, C)`` tensors (multi-crop).

    The official version concatenates the crops with an xformers block-diagonal mask; without
    xformers we run each crop group separately, which is the same function.
    """

    def forward(self, x_or_x_list: Tensor | list[Tensor]) -> Tensor | list[Tensor]:
        if isinstance(x_or_x_list, Tensor):
            return super().forward(x_or_x_list)
        if isinstance(x_or_x_list, list):
            return [super(NestedTensorBlock, self).forward(x) for x in x_or_x_list]
        raise TypeError(f"expected a Tensor or a list of Tensors, got {type(x_or_x_list).__name__}")
