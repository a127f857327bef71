"""SDPA attention equals the textbook softmax(QKᵀ/√d)V computation."""

import math

import pytest
import torch

from dinov2.layers import Attention, MemEffAttention


def naive_attention(
    attn: Attention, x: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    B, N, C = x.shape
    h = attn.num_heads
    d = C // h
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(C, dim=-1)
    q, k, v = (t.reshape(B, N, h, d).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if bias is not None:
        scores = scores + bias
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(B, N, C) @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("attn_class", [Attention, MemEffAttention])
def test_sdpa_attention_equals_naive_softmax_attention(attn_class):
    torch.manual_seed(0)
    attn = attn_class(32, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(attn(x), naive_attention(attn, x), rtol=1e-5, atol=1e-5)


def test_attention_bias_is_added_to_the_scores():
    torch.manual_seed(0)
    attn = MemEffAttention(16, num_heads=2, qkv_bias=True).eval()
    x = torch.randn(1, 5, 16)
    bias = torch.zeros(1, 1, 5, 5)
    bias[..., 3:] = float("-inf")  # keys 3 and 4 invisible
    out = attn(x, attn_bias=bias)
    torch.testing.assert_close(out, naive_attention(attn, x, bias), rtol=1e-5, atol=1e-5)
    # Hiding keys 3,4 is the same as deleting them from k/v for the queries 0..2.
    trunc = attn(x[:, :3])
    torch.testing.assert_close(out[:, :3], trunc, rtol=1e-5, atol=1e-5)


def test_attention_rejects_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        Attention(30, num_heads=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for the bf16 SDPA kernels")
def test_sdpa_attention_bf16_on_cuda_close_to_fp32():
    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, qkv_bias=True).cuda().eval()
    x = torch.randn(2, 50, 64, device="cuda")
    ref = naive_attention(attn, x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = attn(x)
    torch.testing.assert_close(out.float(), ref, rtol=3e-2, atol=3e-2)
