"""DinoVisionTransformer: official keys and sizes, tokens, masks, interpolation, outputs."""

import pytest
import torch
import torch.nn.functional as F

from dinov2.models import DinoVisionTransformer, vit_base, vit_giant2, vit_small

BLOCK_KEYS = [
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


def official_keys(
    depth: int, registers: bool = False, chunk: int = 0, swiglu: bool = False
) -> list[str]:
    """The official DINOv2 backbone key list, written from its naming scheme."""
    keys = ["cls_token", "pos_embed"] + (["register_tokens"] if registers else []) + ["mask_token"]
    keys += ["patch_embed.proj.weight", "patch_embed.proj.bias"]
    block_keys = BLOCK_KEYS
    if swiglu:
        block_keys = [k for k in BLOCK_KEYS if not k.startswith("mlp.")]
        block_keys[9:9] = ["mlp.w12.weight", "mlp.w12.bias", "mlp.w3.weight", "mlp.w3.bias"]
    for i in range(depth):
        prefix = f"blocks.{i // chunk}.{i}." if chunk else f"blocks.{i}."
        keys += [prefix + k for k in block_keys]
    return keys + ["norm.weight", "norm.bias"]


def meta_model(factory, **kwargs):
    with torch.device("meta"):  # no memory, no init cost: only names and shapes matter here
        return factory(**kwargs)


def tiny(**kwargs) -> DinoVisionTransformer:
    kw = dict(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=4,
        num_heads=2,
        block_chunks=0,
        init_values=1e-5,
    )
    kw.update(kwargs)
    return DinoVisionTransformer(**kw).eval()


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(block_chunks=0), official_keys(12)),
        (dict(block_chunks=0, num_register_tokens=4), official_keys(12, registers=True)),
        (dict(block_chunks=4), official_keys(12, chunk=3)),
        (dict(block_chunks=0, ffn_layer="swiglufused"), official_keys(12, swiglu=True)),
    ],
)
def test_vit_small_state_dict_keys_equal_official(kwargs, expected):
    model = meta_model(vit_small, patch_size=14, init_values=1e-5, **kwargs)
    assert list(model.state_dict()) == expected


def test_default_block_chunks_1_is_the_official_single_chunk_layout():
    keys = list(meta_model(vit_small, init_values=1e-5).state_dict())
    assert "blocks.0.11.ls2.gamma" in keys and "blocks.11.ls2.gamma" not in keys


def expected_vit_params(
    dim: int, depth: int, patch: int, img: int, layerscale: bool, mlp_hidden: int
) -> int:
    """Backbone parameter count derived by hand from the architecture."""
    n_patches = (img // patch) ** 2
    tokens = dim + (n_patches + 1) * dim + dim  # cls, pos_embed (with cls), mask_token
    patch_embed = 3 * patch * patch * dim + dim
    attn = dim * 3 * dim + 3 * dim + dim * dim + dim
    mlp = dim * mlp_hidden + mlp_hidden + mlp_hidden * dim + dim
    block = 2 * (2 * dim) + attn + mlp + (2 * dim if layerscale else 0)
    return tokens + patch_embed + depth * block + 2 * dim


@pytest.mark.parametrize(
    "factory, dim, published_millions", [(vit_small, 384, 22.06), (vit_base, 768, 86.58)]
)
def test_parameter_count_matches_published_vit14(factory, dim, published_millions):
    # Hub ViT-S/14 and ViT-B/14 are built with img_size 518 and LayerScale.
    model = meta_model(factory, patch_size=14, img_size=518, init_values=1.0, block_chunks=0)
    n = sum(p.numel() for p in model.parameters())
    assert n == expected_vit_params(dim, 12, 14, 518, layerscale=True, mlp_hidden=4 * dim)
    assert round(n / 1e6, 2) == published_millions


def test_vit_giant2_uses_swiglu_with_4096_hidden():
    model = meta_model(vit_giant2, patch_size=14, block_chunks=0)
    assert model.blocks[0].mlp.w12.weight.shape == (2 * 4096, 1536)
    assert (model.embed_dim, model.n_blocks, model.num_heads) == (1536, 40, 24)


def test_official_initialisation():
    torch.manual_seed(0)
    model = tiny(embed_dim=64, init_values=0.1, num_register_tokens=2)
    assert torch.all(model.mask_token == 0)
    assert model.cls_token.abs().max() < 1e-4 and model.register_tokens.abs().max() < 1e-4
    assert abs(model.pos_embed.std().item() - 0.02) < 0.005
    qkv = model.blocks[0].attn.qkv
    assert abs(qkv.weight.std().item() - 0.02) < 0.002 and torch.all(qkv.bias == 0)
    assert torch.all(model.blocks[0].ls1.gamma == 0.1)


def test_drop_path_rates_linear_and_uniform():
    linear = tiny(depth=5, drop_path_rate=0.2)
    assert [b.sample_drop_ratio for b in linear.blocks] == pytest.approx(
        [0.0, 0.05, 0.1, 0.15, 0.2]
    )
    uniform = tiny(depth=5, drop_path_rate=0.2, drop_path_uniform=True)
    assert [b.sample_drop_ratio for b in uniform.blocks] == pytest.approx([0.2] * 5)


def test_masked_patches_become_mask_token_before_pos_embed():
    torch.manual_seed(0)
    model = tiny(num_register_tokens=2)
    model.mask_token.data.normal_()
    x = torch.randn(2, 3, 32, 32)
    masks = torch.zeros(2, 16, dtype=torch.bool)
    masks[0, 3] = masks[1, 0] = True
    tokens = model.prepare_tokens_with_masks(x, masks)
    patches = model.patch_embed(x)
    pos = model.pos_embed[0]
    # layout: cls, 2 registers (no position), 16 patches
    torch.testing.assert_close(tokens[:, 1:3], model.register_tokens.expand(2, -1, -1))
    torch.testing.assert_close(tokens[0, 3 + 3], model.mask_token[0] + pos[1 + 3])
    torch.testing.assert_close(tokens[1, 3 + 0], model.mask_token[0] + pos[1 + 0])
    torch.testing.assert_close(tokens[0, 3 + 4], patches[0, 4] + pos[1 + 4])
    torch.testing.assert_close(tokens[:, 0], model.cls_token[0].expand(2, -1) + pos[0])
    out = model.forward_features(x, masks)
    assert out["masks"] is masks


def test_pos_embed_interpolation_to_other_resolution():
    model = tiny()
    x = torch.zeros(1, 1 + 6 * 8, 32)  # a 48x64 image: 6x8 patches
    # Same grid: the parameter itself.
    assert model.interpolate_pos_encoding(torch.zeros(1, 17, 32), 32, 32) is model.pos_embed
    # Bicubic resampling keeps a constant grid constant, and the cls position untouched.
    model.pos_embed.data[:, 1:] = 0.7
    out = model.interpolate_pos_encoding(x, 48, 64)
    assert out.shape == (1, 49, 32)
    torch.testing.assert_close(out[:, 1:], torch.full((1, 48, 32), 0.7))
    torch.testing.assert_close(out[:, 0], model.pos_embed[:, 0])


def test_pos_embed_offset_zero_resizes_to_exact_size_and_default_offset_differs():
    torch.manual_seed(0)
    model = tiny(interpolate_offset=0.0)
    grid = model.pos_embed[:, 1:].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(6, 8), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 48, 32)
    out = model.interpolate_pos_encoding(torch.zeros(1, 49, 32), 48, 64)
    torch.testing.assert_close(out[:, 1:], ref)
    model.interpolate_offset = (
        0.1  # official: scale factor (6.1/4, 8.1/4) -> slightly different samples
    )
    assert not torch.allclose(
        model.interpolate_pos_encoding(torch.zeros(1, 49, 32), 48, 64)[:, 1:], ref
    )
    model.interpolate_antialias = True  # downsampling path runs with antialias
    assert model.interpolate_pos_encoding(torch.zeros(1, 5, 32), 16, 16).shape == (1, 5, 32)


def test_forward_features_shapes_and_forward_returns_head_of_cls():
    torch.manual_seed(0)
    model = tiny(num_register_tokens=3)
    x = torch.randn(2, 3, 32, 48)
    out = model.forward_features(x)
    assert out["x_norm_clstoken"].shape == (2, 32)
    assert out["x_norm_regtokens"].shape == (2, 3, 32)
    assert out["x_norm_patchtokens"].shape == (2, 24, 32)
    assert out["x_prenorm"].shape == (2, 1 + 3 + 24, 32)
    torch.testing.assert_close(model(x), out["x_norm_clstoken"])
    torch.testing.assert_close(model.norm(out["x_prenorm"])[:, 0], out["x_norm_clstoken"])
    assert model(x, is_training=True).keys() == out.keys()


def test_list_input_equals_separate_crops():
    torch.manual_seed(0)
    model = tiny()
    g, loc = torch.randn(2, 3, 32, 32), torch.randn(4, 3, 16, 16)
    masks = torch.rand(2, 16) > 0.5
    outs = model.forward_features([g, loc], [masks, None])
    torch.testing.assert_close(
        outs[0]["x_norm_patchtokens"], model.forward_features(g, masks)["x_norm_patchtokens"]
    )
    torch.testing.assert_close(
        outs[1]["x_norm_clstoken"], model.forward_features(loc)["x_norm_clstoken"]
    )


def test_get_intermediate_layers_shapes_and_chunked_equivalence():
    torch.manual_seed(0)
    flat = tiny(num_register_tokens=1)
    x = torch.randn(2, 3, 32, 40)
    outs = flat.get_intermediate_layers(x, n=2)
    assert len(outs) == 2 and outs[0].shape == (2, 20, 32)
    maps = flat.get_intermediate_layers(x, n=[0, 3], reshape=True, return_class_token=True)
    assert maps[0][0].shape == (2, 32, 4, 5) and maps[0][1].shape == (2, 32)
    # Last block, normed, is forward_features' patch tokens.
    torch.testing.assert_close(outs[-1], flat.forward_features(x)["x_norm_patchtokens"])
    raw = flat.get_intermediate_layers(x, n=1, norm=False)[0]
    torch.testing.assert_close(raw, flat.forward_features(x)["x_prenorm"][:, 2:])
    # Chunked layout computes the same function with the same weights.
    chunked = tiny(num_register_tokens=1, block_chunks=2)
    from dinov2.utils.utils import convert_block_layout

    chunked.load_state_dict(convert_block_layout(flat.state_dict(), chunked))
    for a, b in zip(outs, chunked.get_intermediate_layers(x, n=2)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="out of range"):
        flat.get_intermediate_layers(x, n=[7])


def test_training_step_backward_reaches_all_parameters():
    torch.manual_seed(0)
    model = tiny(drop_path_rate=0.3).train()
    out = model(torch.randn(4, 3, 32, 32), masks=torch.rand(4, 16) > 0.5, is_training=True)
    (out["x_norm_clstoken"].sum() + out["x_norm_patchtokens"].sum()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_unknown_ffn_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown ffn_layer 'mlpp'"):
        tiny(ffn_layer="mlpp")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for bf16 autocast SDPA")
def test_bf16_autocast_on_cuda_matches_fp32():
    torch.manual_seed(0)
    model = tiny(num_register_tokens=2).cuda()
    x = torch.randn(2, 3, 32, 32, device="cuda")
    ref = model.forward_features(x)["x_norm_clstoken"]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model.forward_features(x)["x_norm_clstoken"]
    out.float().sum().backward()
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)
    assert model.cls_token.grad is not None and torch.isfinite(model.cls_token.grad).all()
