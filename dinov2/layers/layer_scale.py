"""LayerScale: a learnable per-channel residual gain (CaiT), official key ``gamma``."""

import torch
from torch import Tensor, nn


class LayerScale(nn.Module):
    """Multiply the last dimension by ``gamma`` (initialised to ``init_values``).

    Input and output: ``(..., dim)``.
    """

    def __init__(self, dim: int, init_values: float | Tensor = 1e-5, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.init_values = init_values
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, float(self.init_values))

    def forward(self, x: Tensor) -> Tensor:
        return x.mul_(self.gamma) if self.inplace else x * self.gamma
