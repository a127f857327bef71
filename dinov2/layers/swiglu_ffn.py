"""SwiGLU feed-forward networks (official keys ``w12`` and ``w3``), used by ViT-g/2.

No xformers: the fused variant computes the same function with one packed ``w12`` matmul,
which is what the xformers kernel fuses as well, so weights are interchangeable.
"""

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn


class SwiGLUFFN(nn.Module):
    """``w3(silu(x W1) * (x W2))`` with ``W1, W2`` packed in ``w12``.

    Input ``(..., in_features)``, output ``(..., out_features)``.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[..., nn.Module] | None = None,
        drop: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        # act_layer and drop are accepted for signature compatibility with Mlp; SwiGLU fixes SiLU.
        self.w12 = nn.Linear(in_features, 2 * hidden_features, bias=bias)
        self.w3 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


class SwiGLUFFNFused(SwiGLUFFN):
    """SwiGLU with the official hidden-size rule: 2/3 of ``hidden_features``, rounded up to 8.

    This keeps the parameter count close to an ``Mlp`` of the same ``mlp_ratio``
    (ViT-g/2: 1536 * 4 = 6144 -> 4096).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[..., nn.Module] | None = None,
        drop: float = 0.0,
        bias: bool = True,
    ) -> None:
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        hidden_features = (int(hidden_features * 2 / 3) + 7) // 8 * 8
        super().__init__(in_features, hidden_features, out_features, bias=bias)
