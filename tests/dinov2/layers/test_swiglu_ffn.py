"""SwiGLU feed-forward: official keys and hidden-size rule."""

import torch
import torch.nn.functional as F

from dinov2.layers import SwiGLUFFN, SwiGLUFFNFused


def test_swiglu_fused_hidden_size_rule():
    # ViT-g/2: 1536 * 4 = 6144 -> 6144 * 2/3 = 4096, already a multiple of 8.
    ffn = SwiGLUFFNFused(24, hidden_features=6144)
    assert ffn.w12.weight.shape == (2 * 4096, 24)
    assert ffn.w3.weight.shape == (24, 4096)
    # 100 -> int(66.67) = 66 -> rounded up to a multiple of 8: 72.
    assert SwiGLUFFNFused(8, 100).w3.in_features == 72


def test_swiglu_computes_silu_gate_times_value():
    torch.manual_seed(0)
    ffn = SwiGLUFFN(6, hidden_features=5, out_features=4)
    assert list(ffn.state_dict()) == ["w12.weight", "w12.bias", "w3.weight", "w3.bias"]
    x = torch.randn(3, 6)
    w1, w2 = ffn.w12.weight[:5], ffn.w12.weight[5:]
    b1, b2 = ffn.w12.bias[:5], ffn.w12.bias[5:]
    ref = (F.silu(x @ w1.T + b1) * (x @ w2.T + b2)) @ ffn.w3.weight.T + ffn.w3.bias
    torch.testing.assert_close(ffn(x), ref)
