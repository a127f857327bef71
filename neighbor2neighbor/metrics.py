"""Image quality on the 0–255 scale: PSNR and SSIM (11×11 Gaussian window, σ = 1.5).

Both take ``uint8`` or float arrays of shape (H, W, 3) or (H, W) with values in 0–255. SSIM is
scikit-image's ``structural_similarity`` with the settings of Wang et al. 2004 (the definition the
Neighbor2Neighbor reference computes with OpenCV): Gaussian weights σ = 1.5 (window 11), population
covariance, ``data_range=255``, averaged over channels.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity


def _as_float64(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"image shapes differ: {a64.shape} vs {b64.shape}")
    return a64, b64


def psnr_255(prediction: np.ndarray, target: np.ndarray) -> float:
    """``10 log10(255² / MSE)`` in dB; ``inf`` for identical images."""
    a, b = _as_float64(prediction, target)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM over the image (and channels for (H, W, C)); 1.0 for identical images."""
    a, b = _as_float64(prediction, target)
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1 if a.ndim == 3 else None,
        )
    )
