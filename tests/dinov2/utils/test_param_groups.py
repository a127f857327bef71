"""Layer-wise lr decay and weight-decay exemptions of the official DINOv2 parameter groups."""

from __future__ import annotations

import pytest
import torch

from dinov2.layers import DINOHead
from dinov2.models import vit_small
from dinov2.utils.param_groups import fuse_params_groups, get_params_groups_with_decay


@pytest.fixture(scope="module")
def backbone_groups() -> dict[str, dict]:
    model = vit_small(
        patch_size=16, img_size=32, num_register_tokens=2, init_values=1e-5, block_chunks=0
    )
    groups = get_params_groups_with_decay(model, lr_decay_rate=0.9, patch_embed_lr_mult=0.2)
    return {g["name"]: g for g in groups}


@pytest.mark.parametrize(
    ("name", "multiplier"),
    [
        ("pos_embed", 0.9**13),
        ("cls_token", 0.9**13),
        ("register_tokens", 0.9**13),
        ("mask_token", 0.9**13),
        ("patch_embed.proj.weight", 0.9**13 * 0.2),
        ("blocks.0.attn.qkv.weight", 0.9**12),
        ("blocks.5.mlp.fc1.weight", 0.9**7),
        ("blocks.11.attn.proj.weight", 0.9),
        ("norm.weight", 1.0),
    ],
)
def test_lr_multiplier_of_a_12_block_vit(backbone_groups, name, multiplier):
    assert backbone_groups[name]["lr_multiplier"] == pytest.approx(multiplier, rel=1e-12)


def test_chunked_blocks_use_the_global_block_index():
    model = vit_small(patch_size=16, img_size=32, block_chunks=4)
    groups = {g["name"]: g for g in get_params_groups_with_decay(model, lr_decay_rate=0.9)}
    # blocks.{chunk}.{block}: block 7 lives in chunk 2 and has the rate of block 7.
    assert groups["blocks.2.7.attn.qkv.weight"]["lr_multiplier"] == pytest.approx(0.9**5)


def test_no_weight_decay_for_bias_norm_and_layerscale(backbone_groups):
    for name, g in backbone_groups.items():
        exempt = name.endswith(".bias") or "norm" in name or "gamma" in name
        assert g["wd_multiplier"] == (0.0 if exempt else 1.0), name
    assert backbone_groups["blocks.3.ls1.gamma"]["wd_multiplier"] == 0.0
    assert backbone_groups["blocks.3.norm2.weight"]["wd_multiplier"] == 0.0
    assert backbone_groups["blocks.3.attn.qkv.weight"]["wd_multiplier"] == 1.0


def test_head_has_multiplier_one_and_flags_the_last_layer():
    head = DINOHead(in_dim=16, out_dim=8, hidden_dim=32, bottleneck_dim=4)
    groups = {
        g["name"]: g
        for g in get_params_groups_with_decay(head, lr_decay_rate=0.9, patch_embed_lr_mult=0.2)
    }
    assert {g["lr_multiplier"] for g in groups.values()} == {1.0}
    assert [n for n, g in groups.items() if g["is_last_layer"]] == [
        "last_layer.weight_g",
        "last_layer.weight_v",
    ]


def test_fused_groups_cover_every_parameter_once(backbone_groups):
    fused = fuse_params_groups(backbone_groups.values())
    params = [p for g in fused for p in g["params"]]
    assert len(params) == len(backbone_groups) == len({id(p) for p in params})
    # 13 lr levels (embeddings, 12 blocks, norm) + patch_embed, x decay / no decay, minus empty
    # combinations
    keys = {(g["lr_multiplier"], g["wd_multiplier"], g["is_last_layer"]) for g in fused}
    assert len(keys) == len(fused)
    optimizer = torch.optim.AdamW(fused)
    assert len(optimizer.param_groups) == len(fused)
