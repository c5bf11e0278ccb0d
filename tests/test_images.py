"""Decoding: every mode and orientation becomes upright RGB; bad files are clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import demo_photos
from PIL import Image

from duetml import images
from duetml.errors import BadImageError


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def test_exif_orientation_is_applied() -> None:
    # A 60x30 photo, left half red, stored with orientation 6 ("rotate 90 CW to view").
    pixels = np.zeros((30, 60, 3), np.uint8)
    pixels[:, :30] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(pixels), "JPEG", exif=exif, quality=95)
    upright = images.load_rgb(data)
    assert upright.size == (30, 60)  # portrait once rotated
    top = np.asarray(upright)[5, 15]
    assert top[0] > 200 and top[1] < 60  # the red half is now on top


@pytest.mark.parametrize(
    "mode, fmt",
    [
        ("L", "PNG"),
        ("P", "PNG"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("I;16", "PNG"),
        ("1", "PNG"),
        ("LA", "PNG"),
    ],
)
def test_every_mode_becomes_rgb(mode: str, fmt: str) -> None:
    base = Image.fromarray(np.linspace(0, 255, 64 * 48, dtype=np.uint8).reshape(48, 64))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base, np.uint16) * 257).convert("I;16")
    else:
        image = base.convert(mode)
    square = images.load_square(_encode(image, fmt), 32)
    assert square.shape == (32, 32, 3) and square.dtype == np.uint8
    assert square.std() > 5  # the gradient survived: not a blank image


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgb = images.load_rgb(_encode(image, "PNG"))
    assert np.asarray(rgb)[5, 5].tolist() == [255, 255, 255]


def test_large_jpeg_decodes_at_reduced_scale() -> None:
    big = Image.new("RGB", (4000, 3000), (10, 200, 30))
    loaded = images.load_rgb(_encode(big, "JPEG"), max_side=224)
    assert max(loaded.size) <= 1000  # DCT scaling (draft mode) skipped most of the work


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"this is a text file pretending to be a jpeg", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),
    ],
)
def test_bad_files_get_a_clear_error(data: bytes, words: str) -> None:
    with pytest.raises(BadImageError, match=words):
        images.check_image(data)


def test_truncated_photo_is_rejected() -> None:
    data = demo_photos("hat")[0].read_bytes()
    with pytest.raises(BadImageError, match="damaged or truncated"):
        images.check_image(data[: len(data) // 2])


def test_decompression_bomb_is_an_error() -> None:
    # A tiny PNG whose header claims ~100 megapixels.
    bomb = _encode(Image.new("1", (10_000, 10_000)), "PNG", optimize=True)
    assert len(bomb) < 100_000
    with pytest.raises(BadImageError, match="more than duetml decodes safely"):
        images.check_image(bomb)


def test_real_photo_facts() -> None:
    facts = images.check_image(demo_photos("shoes")[0])
    assert facts.format == "JPEG" and facts.extension == ".jpg" and facts.mime == "image/jpeg"
    assert facts.width > 100 and facts.height > 100
