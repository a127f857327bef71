"""The Neighbor2Neighbor UNet (Huang et al., CVPR 2021), with the reference ``state_dict`` key
names.

Five 2× max-pool levels, 2× transposed-conv upsampling concatenated with the skip of the same
resolution, LeakyReLU(0.2), and three 1×1 "network in network" convs at the output. Parameter names
(``enc_conv0`` … ``enc_conv6``, ``up5.deconv`` … ``up1.deconv``, ``dec_conv5a`` … ``dec_conv1b``,
``nin_a``, ``nin_b``, ``nin_c``) and registration order equal the reference implementation, so
published Neighbor2Neighbor weights load with ``strict=True``.

Input sides must be multiples of 32 (five pools); :func:`neighbor2neighbor.denoiser.denoise_tensor`
pads any image to that.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# The output head width is fixed in the reference (it does not scale with n_feature).
HEAD_WIDTH = 96
# The reference multiplies the Kaiming init of every (de)conv by this factor. Over the ~20 layers of
# the deep path that leaves the initial output (and the deep layers' gradients) near zero: fine for
# the reference's ~10^6 steps, but a run of a few hundred steps stalls near 19 dB at gauss_50 where
# plain Kaiming (scale 1) reaches 24-25 dB (docs/benchmarks.md), hence the ``init_scale`` argument.
INIT_SCALE = 0.1
N_LEVELS = 5


def init_scaled_kaiming_(module: nn.Module, scale: float = INIT_SCALE) -> None:
    """Reference init: Kaiming-normal (fan_in, a=0) weights times ``scale``, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            with torch.no_grad():
                m.weight.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class UpsampleCat(nn.Module):
    """2× transposed conv of ``x`` (N, in_nc, H, W), concatenated with ``skip`` (N, C', 2H, 2W).

    The deconv has a bias, as in the reference (its published weights hold
    ``up{1..5}.deconv.bias``).
    """

    def __init__(self, in_nc: int, out_nc: int, init_scale: float = INIT_SCALE) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(
            in_nc, out_nc, kernel_size=2, stride=2, padding=0, bias=True
        )
        init_scaled_kaiming_(self.deconv, init_scale)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.deconv(x), skip], dim=1)


def with_zero_deconv_biases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with a zero ``up{i}.deconv.bias`` added where it lacks one.

    Our model files written before the deconvs had biases load as the same function (a zero bias
    changes nothing); published weights and newer files have every bias and pass through unchanged.
    """
    missing = [
        k.replace(".weight", ".bias")
        for k in state
        if k.startswith("up")
        and k.endswith(".deconv.weight")
        and k.replace(".weight", ".bias") not in state
    ]
    if not missing:
        return state
    log.warning(
        "checkpoint without deconv biases (written before they were added): using zero biases"
    )
    out = dict(state)
    for key in missing:  # ConvTranspose2d weight: (in, out, kH, kW); bias: (out,)
        weight = state[key.replace(".bias", ".weight")]
        out[key] = torch.zeros(weight.shape[1], dtype=weight.dtype)
    return out


def _shift_down(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Shift the image content down by ``rows`` (zero rows enter at the top), keeping the size."""
    return nn.functional.pad(x[:, :, : x.shape[2] - rows, :], (0, 0, rows, 0))


def _rot90(x: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    return torch.rot90(x, k=quarter_turns, dims=(3, 2))


class UNet(nn.Module):
    """Neighbor2Neighbor UNet: (N, in_nc, H, W) → (N, out_nc, H, W), H and W multiples of 32.

    ``blindspot=True`` builds the reference's blind-spot variant (Laine et al. 2019: four rotated
    copies through upward-shifted convs, so the output at a pixel never sees that input pixel).
    ``zero_last=True`` leaves ``nin_c`` at PyTorch's default init, as the reference does.
    ``init_scale`` multiplies the Kaiming-normal init (reference 0.1; 1.0 for short training runs).
    It only shapes the starting point: it is not part of the architecture and is not saved.
    """

    def __init__(
        self,
        in_nc: int = 3,
        out_nc: int = 3,
        n_feature: int = 48,
        blindspot: bool = False,
        zero_last: bool = False,
        init_scale: float = INIT_SCALE,
    ) -> None:
        super().__init__()
        self.in_nc, self.out_nc, self.n_feature = in_nc, out_nc, n_feature
        self.blindspot, self.zero_last = blindspot, zero_last
        self.act = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        nf = n_feature

        # Registration order matters: state_dict keys come out in the reference order.
        self.enc_conv0 = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.enc_conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.pool1 = nn.MaxPool2d(2)
        self.enc_conv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.pool2 = nn.MaxPool2d(2)
        self.enc_conv3 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.pool3 = nn.MaxPool2d(2)
        self.enc_conv4 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.pool4 = nn.MaxPool2d(2)
        self.enc_conv5 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.pool5 = nn.MaxPool2d(2)
        self.enc_conv6 = nn.Conv2d(nf, nf, 3, 1, 1)

        self.up5 = UpsampleCat(nf, nf, init_scale)
        self.dec_conv5a = nn.Conv2d(nf * 2, nf * 2, 3, 1, 1)
        self.dec_conv5b = nn.Conv2d(nf * 2, nf * 2, 3, 1, 1)
        self.up4 = UpsampleCat(nf * 2, nf * 2, init_scale)
        self.dec_conv4a = nn.Conv2d(nf * 3, nf * 2, 3, 1, 1)
        self.dec_conv4b = nn.Conv2d(nf * 2, nf * 2, 3, 1, 1)
        self.up3 = UpsampleCat(nf * 2, nf * 2, init_scale)
        self.dec_conv3a = nn.Conv2d(nf * 3, nf * 2, 3, 1, 1)
        self.dec_conv3b = nn.Conv2d(nf * 2, nf * 2, 3, 1, 1)
        self.up2 = UpsampleCat(nf * 2, nf * 2, init_scale)
        self.dec_conv2a = nn.Conv2d(nf * 3, nf * 2, 3, 1, 1)
        self.dec_conv2b = nn.Conv2d(nf * 2, nf * 2, 3, 1, 1)
        self.up1 = UpsampleCat(nf * 2, nf * 2, init_scale)

        self.dec_conv1a = nn.Conv2d(nf * 2 + in_nc, HEAD_WIDTH, 3, 1, 1)
        self.dec_conv1b = nn.Conv2d(HEAD_WIDTH, HEAD_WIDTH, 3, 1, 1)
        nin_width = (
            HEAD_WIDTH * 4 if blindspot else HEAD_WIDTH
        )  # four rotations stacked on channels
        self.nin_a = nn.Conv2d(nin_width, nin_width, 1, 1, 0)
        self.nin_b = nn.Conv2d(nin_width, HEAD_WIDTH, 1, 1, 0)
        self.nin_c = nn.Conv2d(HEAD_WIDTH, out_nc, 1, 1, 0)

        for name, module in self.named_children():
            if isinstance(module, nn.Conv2d) and not (zero_last and name == "nin_c"):
                init_scaled_kaiming_(module, init_scale)

    def _conv(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        # Blind-spot convs see only rows above (and the same row as) the output pixel.
        if self.blindspot and conv.kernel_size[0] > 1:
            ofs = conv.kernel_size[0] // 2
            x = nn.functional.pad(x, (0, 0, ofs, 0))
            return conv(x)[:, :, :-ofs, :]
        return conv(x)

    def _pool(self, pool: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
        return pool(_shift_down(x, 1) if self.blindspot else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_nc, H, W) → (N, out_nc, H, W); H, W multiples of 32."""
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"UNet input sides must be multiples of 32, got {tuple(x.shape[-2:])}")
        if self.blindspot:
            x = torch.cat([_rot90(x, k) for k in range(4)], dim=0)
        act = self.act
        skips = [x]
        x = act(self._conv(self.enc_conv0, x))
        x = act(self._conv(self.enc_conv1, x))
        x = self._pool(self.pool1, x)
        skips.append(x)
        for conv, pool in [
            (self.enc_conv2, self.pool2),
            (self.enc_conv3, self.pool3),
            (self.enc_conv4, self.pool4),
            (self.enc_conv5, self.pool5),
        ]:
            x = self._pool(pool, act(self._conv(conv, x)))
            skips.append(x)
        x = act(self._conv(self.enc_conv6, x))
        skips.pop()  # the deepest pooled map is not a skip: enc_conv6 consumed it

        for up, conv_a, conv_b in [
            (self.up5, self.dec_conv5a, self.dec_conv5b),
            (self.up4, self.dec_conv4a, self.dec_conv4b),
            (self.up3, self.dec_conv3a, self.dec_conv3b),
            (self.up2, self.dec_conv2a, self.dec_conv2b),
        ]:
            x = up(x, skips.pop())
            x = act(self._conv(conv_b, act(self._conv(conv_a, x))))
        x = self.up1(x, skips.pop())
        x = act(self._conv(self.dec_conv1b, act(self._conv(self.dec_conv1a, x))))
        if self.blindspot:
            x = _shift_down(x, 1)  # the final shift that removes the centre pixel from the field
            parts = torch.chunk(x, 4, dim=0)
            x = torch.cat([_rot90(p, (4 - k) % 4) for k, p in enumerate(parts)], dim=1)
        x = act(self.nin_a(x))
        x = act(self.nin_b(x))
        return self.nin_c(x)
