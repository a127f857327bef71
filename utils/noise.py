"""The paper's noise models on images with intensities in [0, 1].

Three families, each named by a spec string ``<family>_<level>``:

- ``gauss_<sigma_255>``: additive Gaussian, ``clip(x + N(0, sigma_255 / 255))``;
- ``shot_<lambda>``: Poisson (shot) noise, ``clip(Poisson(lambda * x) / lambda)``;
  a smaller lambda (fewer photons) is noisier;
- ``speckle_<c>``: multiplicative, ``clip(x + x * N(0, c))``.

The same functions work on numpy ``uint8`` images (dataset generation; quantised as the paper's
generator does: scale back to 0-255 and truncate to ``uint8``) and on float torch tensors of any
shape and device (on-the-fly noise). Randomness always comes from an explicit generator.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

FAMILIES = ("gauss", "shot", "speckle")
LEVEL_NAMES = {"gauss": "sigma_255", "shot": "lambda", "speckle": "c"}
PAPER_SPECS = (
    "gauss_50",
    "gauss_100",
    "gauss_255",
    "shot_10",
    "shot_3",
    "shot_1",
    "speckle_0.4",
    "speckle_0.7",
    "speckle_1.0",
)
VALID_FORMS = (
    "gauss_<sigma_255 > 0> (e.g. gauss_50), shot_<lambda > 0> (e.g. shot_10), "
    "speckle_<c > 0> (e.g. speckle_0.4)"
)
_SPEC_RE = re.compile(r"^(?P<family>[a-z]+)_(?P<level>[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)$")


@dataclass(frozen=True)
class NoiseSpec:
    """A noise family and its level (``sigma_255`` for gauss, ``lambda`` for shot, ``c`` for
    speckle)."""

    family: str
    level: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", float(self.level))
        if self.family not in FAMILIES:
            raise ValueError(f"unknown noise family {self.family!r}; valid forms: {VALID_FORMS}")
        if not (math.isfinite(self.level) and self.level > 0):
            raise ValueError(
                f"noise level {LEVEL_NAMES[self.family]} must be a finite number > 0, "
                f"got {self.level}; "
                f"valid forms: {VALID_FORMS}"
            )

    @property
    def tag(self) -> str:
        """Canonical spec string, used in folder names: ``gauss_100``, ``shot_3``,
        ``speckle_1.0``."""
        if self.family == "speckle":
            return f"speckle_{self.level!r}"
        return f"{self.family}_{self.level:g}"

    def __str__(self) -> str:
        return self.tag


def parse_noise_spec(spec: str | NoiseSpec) -> NoiseSpec:
    """Parse ``gauss_50`` / ``shot_10`` / ``speckle_0.4``; a bad spec raises ValueError listing the
    valid forms."""
    if isinstance(spec, NoiseSpec):
        return spec
    m = _SPEC_RE.match(str(spec).strip())
    if m is None:
        raise ValueError(f"bad noise spec {spec!r}; valid forms: {VALID_FORMS}")
    try:
        return NoiseSpec(m["family"], float(m["level"]))
    except ValueError as e:
        raise ValueError(f"bad noise spec {spec!r}: {e}") from None


def _noisy_float_numpy(x: np.ndarray, spec: NoiseSpec, rng: np.random.Generator) -> np.ndarray:
    """Float array in [0, 1] → noisy array of the same dtype in [0, 1]; modifies nothing the caller
    owns.

    The normal draws are float32 (half the bytes of float64 draws); the arithmetic runs in
    ``x.dtype``, in the order the formulas are written (x + n·σ, Poisson(λx)/λ, x + x·n·c), so a
    float64 ``x`` gives bit-for-bit the values of the straightforward float64 numpy code.
    """
    if spec.family == "shot":
        y = rng.poisson(x * spec.level).astype(x.dtype)
        y /= spec.level
    else:
        y = rng.standard_normal(x.shape, dtype=np.float32).astype(x.dtype)
        if spec.family == "gauss":
            y *= spec.level / 255.0
        else:
            y *= x
            y *= spec.level
        y += x
    return np.clip(y, 0.0, 1.0, out=y)


def add_noise_uint8(
    image: np.ndarray, spec: str | NoiseSpec, rng: np.random.Generator
) -> np.ndarray:
    """Noisy copy of a ``uint8`` image (any shape), quantised like the paper: ``uint8(255 * y)``,
    truncating.

    float64 arithmetic, as the reference generator: the output does not depend on rounding
    shortcuts.
    """
    spec = parse_noise_spec(spec)
    if image.dtype != np.uint8:
        raise TypeError(f"add_noise_uint8 expects a uint8 array, got {image.dtype}")
    x = image.astype(np.float64)
    x /= 255.0
    y = _noisy_float_numpy(x, spec, rng)
    y *= 255.0
    return y.astype(np.uint8)  # truncation, as the reference generator


def add_noise(
    x: torch.Tensor | np.ndarray,
    spec: str | NoiseSpec,
    generator: torch.Generator | np.random.Generator | None = None,
) -> torch.Tensor | np.ndarray:
    """Noisy version of ``x`` with intensities in [0, 1], clipped to [0, 1].

    ``x``: a float torch tensor of any shape on any device (``generator``: a ``torch.Generator`` on
    that device, or None for the global one), or a float numpy array (``generator``: a numpy
    ``Generator``). ``uint8`` numpy images go through :func:`add_noise_uint8`.
    """
    spec = parse_noise_spec(spec)
    if isinstance(x, np.ndarray):
        if x.dtype == np.uint8:
            return add_noise_uint8(
                x, spec, generator if generator is not None else np.random.default_rng()
            )
        rng = generator if generator is not None else np.random.default_rng()
        return _noisy_float_numpy(x.astype(np.float32, copy=False), spec, rng)
    if not torch.is_floating_point(x):
        raise TypeError(f"add_noise expects a float tensor in [0, 1], got {x.dtype}")
    if spec.family == "gauss":
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = x + noise * (spec.level / 255.0)
    elif spec.family == "shot":
        rate = (x.float() * spec.level).clamp_min(0)
        y = (torch.poisson(rate, generator=generator) / spec.level).to(x.dtype)
    else:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = x + x * noise * spec.level
    return y.clamp(0.0, 1.0)


def snr_db(noisy: torch.Tensor | np.ndarray, clean: torch.Tensor | np.ndarray) -> float:
    """Signal-to-noise ratio ``10 log10(sum(clean²) / sum((noisy - clean)²))`` in dB (inf when
    equal)."""
    clean64 = np.asarray(
        clean.cpu() if isinstance(clean, torch.Tensor) else clean, dtype=np.float64
    )
    noisy64 = np.asarray(
        noisy.cpu() if isinstance(noisy, torch.Tensor) else noisy, dtype=np.float64
    )
    if clean64.shape != noisy64.shape:
        raise ValueError(f"snr_db: shapes differ, {noisy64.shape} vs {clean64.shape}")
    noise_power = float(np.sum((noisy64 - clean64) ** 2))
    signal_power = float(np.sum(clean64**2))
    if noise_power == 0:
        return math.inf
    return 10.0 * math.log10(signal_power / noise_power)
