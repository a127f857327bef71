"""DINOHead: official keys, weight-norm semantics, L2 bottleneck, init."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from dinov2.layers import DINOHead


def test_dino_head_state_dict_keys_are_official():
    head = DINOHead(in_dim=16, out_dim=10, hidden_dim=32, bottleneck_dim=8)
    keys = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert keys == {
        "mlp.0.weight": (32, 16),
        "mlp.0.bias": (32,),
        "mlp.2.weight": (32, 32),
        "mlp.2.bias": (32,),
        "mlp.4.weight": (8, 32),
        "mlp.4.bias": (8,),
        "last_layer.weight_g": (10, 1),
        "last_layer.weight_v": (10, 8),
    }


def test_dino_head_init_weight_g_ones_trunc_normal_linears():
    torch.manual_seed(0)
    head = DINOHead(in_dim=256, out_dim=10, hidden_dim=512, bottleneck_dim=64)
    assert torch.all(head.last_layer.weight_g == 1)
    w = head.mlp[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert torch.all(head.mlp[0].bias == 0)
    # weight_g = 1 -> every prototype row has unit norm
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(10))


def test_dino_head_outputs_cosine_similarity_to_prototypes():
    torch.manual_seed(0)
    head = DINOHead(in_dim=16, out_dim=10, hidden_dim=32, bottleneck_dim=8)
    x = torch.randn(4, 16)
    z = F.normalize(head.mlp(x), dim=-1)
    protos = F.normalize(head.last_layer.weight_v, dim=-1)
    torch.testing.assert_close(head(x), z @ protos.T)
    assert head(x).abs().max() <= 1.0 + 1e-6


def test_weight_norm_matches_torch_weight_norm_with_same_keys():
    torch.manual_seed(0)
    head = DINOHead(in_dim=16, out_dim=10, hidden_dim=32, bottleneck_dim=8)
    head.last_layer.weight_g.data.uniform_(0.5, 2.0)  # non-trivial norms
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = nn.utils.weight_norm(nn.Linear(8, 10, bias=False))
    ref.load_state_dict(head.last_layer.state_dict())  # same keys and shapes: loads strictly
    z = torch.randn(3, 8)
    torch.testing.assert_close(head.last_layer(z), ref(z))


def test_dino_head_gradients_reach_g_and_v():
    head = DINOHead(in_dim=16, out_dim=10, hidden_dim=32, bottleneck_dim=8)
    head(torch.randn(4, 16)).square().sum().backward()
    assert head.last_layer.weight_g.grad is not None and head.last_layer.weight_v.grad is not None


def test_dino_head_with_batchnorm_and_one_layer():
    assert list(DINOHead(16, 10, nlayers=1, bottleneck_dim=8).state_dict())[:2] == [
        "mlp.0.weight",
        "mlp.0.bias",
    ]
    bn = DINOHead(16, 10, use_bn=True, hidden_dim=32, bottleneck_dim=8)
    assert isinstance(bn.mlp[1], nn.BatchNorm1d) and isinstance(bn.mlp[6], nn.Linear)
