"""Multi-head self-attention through ``F.scaled_dot_product_attention``.

SDPA picks the flash / memory-efficient kernels on CUDA and a fused kernel on CPU, so no
xformers is needed; ``MemEffAttention`` keeps the official name and ``attn_bias`` argument.
"""

import torch.nn.functional as F
from torch import Tensor, nn


class Attention(nn.Module):
    """Self-attention with a packed ``qkv`` projection; ``(B, N, C)`` -> ``(B, N, C)``."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        """``attn_bias``: optional additive (float) or boolean mask broadcastable to
        ``(B, h, N, N)``."""
        B, N, C = x.shape
        # (B, N, 3, h, d) -> (3, B, h, N, d): one matmul for q, k and v.
        qkv = (
            self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, dropout_p=self.attn_drop if self.training else 0.0
        )
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class MemEffAttention(Attention):
    """Official name for the memory-efficient attention; SDPA already dispatches to such kernels."""
