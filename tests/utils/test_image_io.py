"""Decoding rules of utils.image_io on real files of every awkward kind, and the fast PNG writer."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from utils.image_io import ImageDecodeError, encode_png_rgb, is_image_file, load_rgb_uint8


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def test_png_writer_round_trips_exactly_through_pillow(rgb):
    decoded = np.asarray(Image.open(io.BytesIO(encode_png_rgb(rgb))))
    assert decoded.dtype == np.uint8 and decoded.shape == (32, 32, 3)
    np.testing.assert_array_equal(decoded, rgb)


def test_png_writer_is_deterministic_and_rejects_non_rgb(rgb):
    assert encode_png_rgb(rgb) == encode_png_rgb(rgb.copy())
    with pytest.raises(ValueError, match="uint8"):
        encode_png_rgb(rgb.astype(np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        encode_png_rgb(rgb[..., 0])


def test_sixteen_bit_grayscale_is_divided_by_257_and_rounded(tmp_path):
    values = np.array([[0, 257, 65535, 1000], [128, 129, 385, 386]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # really a 16-bit file
    out = load_rgb_uint8(tmp_path / "g16.png")
    expected = np.array([[0, 1, 255, 4], [0, 1, 1, 2]], dtype=np.uint8)  # round(v / 257), half up
    np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, axis=2))


def write_png16_rgb(path, values: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    h, w, _ = values.shape
    rows = b"".join(b"\x00" + values[i].astype(">u2").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_sixteen_bit_rgb_keeps_the_high_byte(tmp_path):
    values = np.array([[[0, 257, 65535], [1000, 40000, 128]]], dtype=np.uint16)
    write_png16_rgb(tmp_path / "rgb16.png", values)
    expected = np.array(
        [[[0, 1, 255], [3, 156, 0]]], dtype=np.uint8
    )  # v >> 8 (1000 -> 3, not round(3.89))
    np.testing.assert_array_equal(load_rgb_uint8(tmp_path / "rgb16.png"), expected)


def test_alpha_is_dropped_not_composited(tmp_path, rgb):
    rgba = np.concatenate([rgb, np.zeros((32, 32, 1), np.uint8)], axis=2)  # fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_rgb_uint8(tmp_path / "a.png"), rgb)


def test_grayscale_palette_and_cmyk_become_rgb(tmp_path, rgb):
    Image.fromarray(rgb[..., 0], mode="L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(
        load_rgb_uint8(tmp_path / "l.png"), np.repeat(rgb[..., :1], 3, axis=2)
    )
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(
        load_rgb_uint8(tmp_path / "p.png"), np.asarray(pal.convert("RGB"))
    )
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    out = load_rgb_uint8(tmp_path / "c.jpg")
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 20  # JPEG-lossy but the same picture


def test_truncated_and_garbage_files_raise_an_error_naming_the_file(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg at all")
    for name in ("cut.png", "junk.jpg"):
        with pytest.raises(ImageDecodeError, match=name):
            load_rgb_uint8(tmp_path / name)


def test_image_extensions_are_case_insensitive_and_hidden_files_skipped():
    assert is_image_file("a/B.JPG") and is_image_file("x.Tiff") and is_image_file("y.webp")
    assert (
        not is_image_file("notes.txt")
        and not is_image_file(".x.png")
        and not is_image_file("noext")
    )
