"""UNet: reference parameter names, shapes, init and the blind-spot property."""

from __future__ import annotations

import math

import pytest
import torch

from neighbor2neighbor.checkpoint import load_unet
from neighbor2neighbor.unet import UNet

# Every parameter of the reference arch_unet.UNet (blindspot=False), in state_dict order.
REFERENCE_KEYS = [
    *[f"enc_conv{i}.{p}" for i in range(7) for p in ("weight", "bias")],
    "up5.deconv.weight",
    "up5.deconv.bias",
    "dec_conv5a.weight",
    "dec_conv5a.bias",
    "dec_conv5b.weight",
    "dec_conv5b.bias",
    "up4.deconv.weight",
    "up4.deconv.bias",
    "dec_conv4a.weight",
    "dec_conv4a.bias",
    "dec_conv4b.weight",
    "dec_conv4b.bias",
    "up3.deconv.weight",
    "up3.deconv.bias",
    "dec_conv3a.weight",
    "dec_conv3a.bias",
    "dec_conv3b.weight",
    "dec_conv3b.bias",
    "up2.deconv.weight",
    "up2.deconv.bias",
    "dec_conv2a.weight",
    "dec_conv2a.bias",
    "dec_conv2b.weight",
    "dec_conv2b.bias",
    "up1.deconv.weight",
    "up1.deconv.bias",
    "dec_conv1a.weight",
    "dec_conv1a.bias",
    "dec_conv1b.weight",
    "dec_conv1b.bias",
    "nin_a.weight",
    "nin_a.bias",
    "nin_b.weight",
    "nin_b.bias",
    "nin_c.weight",
    "nin_c.bias",
]


def test_state_dict_keys_equal_the_reference_list_in_order():
    keys = list(UNet().state_dict())
    assert keys == REFERENCE_KEYS
    assert {f"up{i}.deconv.bias" for i in range(1, 6)} <= set(
        keys
    )  # the reference deconvs have biases


def test_a_state_dict_with_the_reference_key_set_loads_strictly(tmp_path):
    # a published denoiser as its training saved it: a bare state_dict behind DataParallel's
    # ``module.``
    g = torch.Generator().manual_seed(0)
    shapes = {k: v.shape for k, v in UNet().state_dict().items()}
    published = {f"module.{k}": torch.randn(shapes[k], generator=g) * 0.01 for k in REFERENCE_KEYS}
    path = tmp_path / "n2n_gauss100.pth"
    torch.save(published, path)
    model = load_unet(path)  # strict: a missing or unexpected key is an error
    for key in REFERENCE_KEYS:
        assert torch.equal(model.state_dict()[key], published[f"module.{key}"])
    UNet().load_state_dict({k: published[f"module.{k}"] for k in REFERENCE_KEYS}, strict=True)


def test_model_file_written_without_deconv_biases_loads_as_the_same_function(tmp_path):
    torch.manual_seed(0)
    model = UNet(n_feature=8).eval()
    with torch.no_grad():
        for i in range(1, 6):
            getattr(model, f"up{i}").deconv.bias.zero_()
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("deconv.bias")}
    arch = {"in_nc": 3, "out_nc": 3, "n_feature": 8, "blindspot": False, "zero_last": False}
    torch.save({"model": old, "arch": arch}, tmp_path / "model_best.pth")
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            load_unet(tmp_path / "model_best.pth")(x), model(x), rtol=0, atol=0
        )


def test_reference_shapes_for_n_feature_48():
    sd = UNet().state_dict()
    assert sd["enc_conv0.weight"].shape == (48, 3, 3, 3)
    assert sd["up5.deconv.weight"].shape == (48, 48, 2, 2)
    assert sd["dec_conv4a.weight"].shape == (96, 144, 3, 3)
    assert sd["dec_conv1a.weight"].shape == (96, 96 + 3, 3, 3)
    assert sd["nin_c.weight"].shape == (3, 96, 1, 1)
    assert sd["up5.deconv.bias"].shape == (48,) and sd["up1.deconv.bias"].shape == (96,)
    # By hand: encoder 1344 + 6·20784, up5 9216 + 48 + 2·83040, three levels of 36864 + 96 + 124512
    # + 83040,
    # up1 36864 + 96, dec_conv1a/b 85632 + 83040, nin 2·9312 + 291.
    assert sum(v.numel() for v in sd.values()) == 1_259_043 + 48 + 4 * 96


def test_init_is_kaiming_normal_times_0p1_with_zero_bias():
    torch.manual_seed(0)
    model = UNet()
    w = model.dec_conv1b.weight  # 96*96*9 weights: the sample std is accurate to < 1 %
    expected_std = 0.1 * math.sqrt(2.0 / (96 * 9))
    assert w.std().item() == pytest.approx(expected_std, rel=0.02)
    assert all(
        float(m.bias.detach().abs().max()) == 0.0
        for m in model.modules()
        if getattr(m, "bias", None) is not None
    )


def test_init_scale_multiplies_every_conv_and_deconv_init():
    torch.manual_seed(0)
    model = UNet(init_scale=1.0)
    assert model.dec_conv1b.weight.std().item() == pytest.approx(
        math.sqrt(2.0 / (96 * 9)), rel=0.02
    )
    # ConvTranspose2d's fan_in (as torch computes it) is weight.size(1) * kernel area = 96 * 4.
    assert model.up1.deconv.weight.std().item() == pytest.approx(
        math.sqrt(2.0 / (96 * 4)), rel=0.02
    )


def test_reference_init_starts_from_a_near_zero_output_and_plain_kaiming_does_not():
    # Why short runs use init_scale 1.0: twenty 0.1-scaled layers shrink the output ~10^5-fold.
    x = torch.rand(2, 3, 64, 64)
    stds = {}
    for scale in (0.1, 1.0):
        torch.manual_seed(0)
        with torch.no_grad():
            stds[scale] = UNet(n_feature=8, init_scale=scale)(x).std().item()
    assert stds[0.1] < 1e-4 < 0.1 < stds[1.0]


def test_forward_keeps_the_spatial_size_and_rejects_sides_not_multiple_of_32():
    model = UNet(n_feature=8).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 64)).shape == (2, 3, 32, 64)
        with pytest.raises(ValueError, match="multiples of 32"):
            model(torch.rand(1, 3, 33, 32))


def test_blindspot_output_never_depends_on_its_own_input_pixel():
    torch.manual_seed(0)
    model = UNet(n_feature=8, blindspot=True)
    assert model.nin_a.weight.shape == (384, 384, 1, 1)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    model(x)[0, :, 16, 16].sum().backward()
    grad = x.grad[0].abs().sum(0)
    assert grad[16, 16] == 0.0
    assert grad[15, 16] > 0 and grad[16, 15] > 0 and grad[17, 16] > 0  # neighbours do contribute
