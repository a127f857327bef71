"""Transformer block: official keys, LayerScale, stochastic depth, list inputs."""

import pytest
import torch

from dinov2.layers import (
    Block,
    LayerScale,
    NestedTensorBlock,
    SwiGLUFFNFused,
    drop_add_residual_stochastic_depth,
)
from dinov2.layers.drop_path import drop_path


def test_block_state_dict_keys_are_official():
    blk = Block(16, num_heads=2, qkv_bias=True, init_values=1e-5)
    assert list(blk.state_dict()) == [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "ls1.gamma",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
        "ls2.gamma",
    ]
    swiglu = Block(16, num_heads=2, ffn_layer=SwiGLUFFNFused)
    assert [k for k in swiglu.state_dict() if k.startswith("mlp.")] == [
        "mlp.w12.weight",
        "mlp.w12.bias",
        "mlp.w3.weight",
        "mlp.w3.bias",
    ]


def test_block_without_init_values_has_no_layerscale():
    assert not any("gamma" in k for k in Block(16, num_heads=2).state_dict())


def test_layerscale_multiplies_channels_by_gamma():
    ls = LayerScale(3, init_values=0.5)
    torch.testing.assert_close(ls.gamma.data, torch.full((3,), 0.5))
    ls.gamma.data = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(ls(torch.ones(2, 3)), torch.tensor([[1.0, 2.0, 3.0]] * 2))


def test_block_is_prenorm_residual():
    torch.manual_seed(0)
    blk = Block(16, num_heads=2, qkv_bias=True, init_values=0.3).eval()
    x = torch.randn(2, 5, 16)
    y = x + blk.ls1(blk.attn(blk.norm1(x)))
    y = y + blk.ls2(blk.mlp(blk.norm2(y)))
    torch.testing.assert_close(blk(x), y)


def test_drop_path_zeroes_whole_samples_and_rescales_survivors():
    torch.manual_seed(0)
    x = torch.ones(1000, 4, 8)
    out = drop_path(x, drop_prob=0.25, training=True)
    per_sample = out.flatten(1)
    # every sample is either dropped (0) or kept and scaled by 1/keep_prob, never mixed
    values = per_sample.unique()
    assert len(values) == 2 and values[0] == 0.0
    assert values[1].item() == pytest.approx(1 / 0.75)
    assert (per_sample.std(dim=1) == 0).all()
    kept = (per_sample[:, 0] > 0).float().mean().item()
    assert 0.7 < kept < 0.8
    assert torch.equal(drop_path(x, 0.25, training=False), x)


def test_stochastic_depth_subset_updates_kept_samples_with_scaled_residual():
    torch.manual_seed(0)
    x = torch.zeros(8, 3, 4)
    out = drop_add_residual_stochastic_depth(x, lambda t: torch.ones_like(t), sample_drop_ratio=0.5)
    changed = out.flatten(1).abs().sum(1) > 0
    assert changed.sum().item() == 4  # 8 - int(8 * 0.5) samples get the branch
    # scaled by B / n_kept = 2 so the expectation over samples equals the undropped residual
    assert torch.all(out[changed] == 2.0)


def test_block_eval_ignores_drop_path():
    torch.manual_seed(0)
    blk = Block(16, num_heads=2, drop_path=0.5).eval()
    x = torch.randn(4, 5, 16)
    torch.testing.assert_close(blk(x), blk(x))


def test_nested_block_list_input_equals_separate_calls():
    torch.manual_seed(0)
    blk = NestedTensorBlock(16, num_heads=2, qkv_bias=True).eval()
    a, b = torch.randn(2, 5, 16), torch.randn(3, 9, 16)
    out = blk([a, b])
    torch.testing.assert_close(out[0], blk(a))
    torch.testing.assert_close(out[1], blk(b))
