"""Decode any image file to 8-bit RGB, and write RGB images as fast lossless PNG.

Decoding rules (shared by every stage, so that all of them see the same pixels):

- the whole file is decoded (``Image.load``), so a truncated or corrupt file raises
  :class:`ImageDecodeError` here instead of yielding a half-grey image later;
- 8-bit modes go through Pillow's ``convert("RGB")``: grayscale is replicated to three channels,
  palette images are looked up, CMYK uses Pillow's conversion (Adobe-inverted CMYK JPEGs are
  handled by Pillow's JPEG decoder);
- alpha (RGBA, LA, PA, palette transparency) is **dropped**, not composited: this is what
  torchvision's ``ImageFolder`` loader and the official DINOv2 decoder do, so a noisy copy holds the
  pixels that training would have seen from the clean file;
- 16-bit grayscale (modes ``I;16*`` and ``I``) is mapped to 8 bits by ``round(v / 257)``, the exact
  inverse of the usual 8→16-bit expansion ``v * 257``; 16-bit RGB(A) PNGs are reduced by Pillow
  itself, which keeps the high byte (``v >> 8``); both agree on images expanded from 8 bits;
- multi-frame files (GIF, TIFF) use their first frame; EXIF orientation is *not* applied (as in the
  reference loaders), so the pixel grid is the stored one.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    (
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".gif",
    )
)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class ImageDecodeError(ValueError):
    """An image file that cannot be decoded; the message names the file."""


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a file name with an image extension (case-insensitive); hidden files never count."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(img, dtype=np.int64)
        # +128 then floor-divide = round half up of v / 257 on non-negative integers.
        gray = ((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8)
        return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), mode="RGB")
    if img.mode == "F":
        raise ValueError("floating-point images (mode F) have no defined 0-255 range")
    return img.convert("RGB")


def load_rgb_image(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` fully into a PIL RGB image (rules in the module docstring).

    Raises :class:`ImageDecodeError` (one line naming the file) for a corrupt, truncated or
    unsupported file, :class:`FileNotFoundError` for a missing one.
    """
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _to_rgb(img)
            if rgb is img:
                rgb = img.copy()  # detach from the file before it is closed
    except FileNotFoundError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        struct.error,
    ) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageDecodeError(f"cannot decode image {path}: {reason}") from e
    return rgb


def load_rgb_uint8(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to a ``uint8`` array of shape ``[H, W, 3]`` (rules in the module
    docstring)."""
    return np.asarray(load_rgb_image(path), dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png_rgb(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a ``uint8 [H, W, 3]`` image, encoded for speed.

    Why not Pillow's encoder: on noisy photos it spends most of its time choosing a row filter per
    line and deflating at level 6, while noise leaves almost nothing for filters and LZ matching to
    find. Filter "None" with zlib's run-length strategy gives files about as small as Pillow's
    default, several times faster (measured by ``bench/noise_throughput.py``). Deterministic: the
    same pixels always give the same bytes.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"encode_png_rgb expects uint8 [H, W, 3], got {image.dtype} {list(image.shape)}"
        )
    height, width = image.shape[:2]
    rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    rows[:, 0] = 0  # PNG filter type "None" on every row
    rows[:, 1:] = image.reshape(height, 3 * width)
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = deflate.compress(rows.tobytes()) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def write_png_rgb(file: str | os.PathLike | BinaryIO, image: np.ndarray) -> None:
    """Write :func:`encode_png_rgb` bytes to a path or an open binary file (no temp file: callers
    rename)."""
    data = encode_png_rgb(image)
    if isinstance(file, (str, os.PathLike)):
        Path(file).write_bytes(data)
    else:
        file.write(data)
