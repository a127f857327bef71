"""PatchEmbed is a linear map of non-overlapping patches."""

import pytest
import torch

from dinov2.layers import PatchEmbed


def test_patch_embed_equals_linear_projection_of_patches():
    torch.manual_seed(0)
    pe = PatchEmbed(img_size=16, patch_size=4, in_chans=3, embed_dim=8)
    assert list(pe.state_dict()) == ["proj.weight", "proj.bias"]
    x = torch.randn(2, 3, 8, 12)  # any multiple of the patch size
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 2, 3, 4, 4)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 6, 48)  # row-major patch order
    ref = patches @ pe.proj.weight.reshape(8, 48).T + pe.proj.bias
    torch.testing.assert_close(pe(x), ref, rtol=1e-5, atol=1e-5)
    assert pe.num_patches == 16


def test_patch_embed_rejects_size_not_multiple_of_patch():
    with pytest.raises(ValueError, match="multiple of the patch size"):
        PatchEmbed(img_size=16, patch_size=4, embed_dim=8)(torch.randn(1, 3, 10, 12))
