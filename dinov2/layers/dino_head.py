"""DINO / iBOT projection head (official keys ``mlp.{0,2,4}``, ``last_layer.weight_g/weight_v``)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WeightNormLinear(nn.Module):
    """Bias-free linear layer ``y = x Wᵀ`` with ``W = g * v / ||v||`` (row-wise norm).

    Same parametrisation and state_dict keys (``weight_g`` ``(out, 1)``, ``weight_v``
    ``(out, in)``) as ``torch.nn.utils.weight_norm(nn.Linear(...), dim=0)``, which is deprecated;
    the ``parametrizations`` replacement would rename the keys and break official checkpoints.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        v = nn.Linear(in_features, out_features, bias=False).weight.detach()  # default Linear init
        self.in_features = in_features
        self.out_features = out_features
        self.weight_g = nn.Parameter(v.norm(dim=1, keepdim=True))
        self.weight_v = nn.Parameter(v.clone())

    @property
    def weight(self) -> Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight)


def _build_mlp(
    nlayers: int, in_dim: int, bottleneck_dim: int, hidden_dim: int, use_bn: bool, bias: bool
) -> nn.Sequential:
    if nlayers == 1:
        return nn.Sequential(nn.Linear(in_dim, bottleneck_dim, bias=bias))
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=bias)]
    if use_bn:
        layers.append(nn.BatchNorm1d(hidden_dim))
    layers.append(nn.GELU())
    for _ in range(nlayers - 2):
        layers.append(nn.Linear(hidden_dim, hidden_dim, bias=bias))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
    layers.append(nn.Linear(hidden_dim, bottleneck_dim, bias=bias))
    return nn.Sequential(*layers)


class DINOHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> weight-normed prototypes.

    Input ``(B, in_dim)`` (or ``(..., in_dim)``), output ``(..., out_dim)`` prototype scores.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        use_bn: bool = False,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        mlp_bias: bool = True,
    ) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        self.mlp = _build_mlp(nlayers, in_dim, bottleneck_dim, hidden_dim, use_bn, mlp_bias)
        self.apply(self._init_weights)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)
        # Prototype norms start at 1, so the logits are cosine similarities at initialisation.
        with torch.no_grad():
            self.last_layer.weight_g.fill_(1.0)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mlp(x)
        # Official: 1e-12 underflows in fp16, so a larger eps is used there.
        eps = 1e-6 if x.dtype == torch.float16 else 1e-12
        x = F.normalize(x, dim=-1, p=2, eps=eps)
        return self.last_layer(x)
