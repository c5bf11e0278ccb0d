"""Decoding: every mode and orientation becomes upright RGB; bad files are clear errors."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import demo_photos
from PIL import Image, ImageFile

from duetml import images
from duetml.errors import BadImageError


def _encode(image: Image.Image, fmt: str, **kw: Any) -> bytes:
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
        (b"this is a text file pretending to be a jpeg", "not an image duetml can read"),
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


# ----- memory bounded by the output, not the input (issue 7, item 4) ------------------------
MAKE_IMAGE = """
import sys
import numpy as np
from PIL import Image
kind, width, height, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :]
if kind == "png16":
    rows = (np.linspace(0, 1, height, dtype=np.float32)[:, None] * 20000).astype(np.uint16)
    pixels = (ramp * 40000).astype(np.uint16) + rows
    Image.fromarray(pixels).save(path, "PNG")
else:
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = (ramp * 255).astype(np.uint8)
    pixels[..., 1] = 90
    pixels[..., 2] = (np.linspace(0, 255, height, dtype=np.float32)[:, None]).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=80)
"""

PEAK_MEMORY = """
import resource, sys
from pathlib import Path
from duetml import images
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == "thumbnail":
    assert images.thumbnail_jpeg(Path(sys.argv[2]), 192)[:2] == b"\\xff\\xd8"
else:
    images.check_image(Path(sys.argv[2]))
    assert images.load_square(Path(sys.argv[2]), 224).shape == (224, 224, 3)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def _make(tmp_path: Path, kind: str, width: int, height: int) -> Path:
    path = tmp_path / f"{kind}-{width}x{height}.{'png' if kind == 'png16' else 'jpg'}"
    subprocess.run(
        [sys.executable, "-c", MAKE_IMAGE, kind, str(width), str(height), str(path)], check=True
    )
    return path


def _peak_mb(operation: str, path: Path) -> int:
    """Peak memory (MB) of ``operation`` on ``path`` in a fresh process, above its imports."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, operation, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


@pytest.mark.slow
def test_a_16_bit_grey_png_near_the_limit_costs_hundreds_of_mb_not_gigabytes(
    tmp_path: Path,
) -> None:
    # The 9400x9400 16-bit PNG: 177 MB of pixels once decoded, 3.8 GB per thumbnail
    # when converted through float64. Now: the decoded pixels plus one 16-bit copy at most.
    path = _make(tmp_path, "png16", 9400, 9400)
    assert path.stat().st_size < 20_000_000
    for operation in ("thumbnail", "features"):
        assert _peak_mb(operation, path) < 600, operation


@pytest.mark.slow
def test_a_108_megapixel_phone_jpeg_imports_at_the_cost_of_a_small_one(tmp_path: Path) -> None:
    path = _make(tmp_path, "jpeg", 12000, 9000)
    facts = images.check_image(path)
    assert (facts.width, facts.height) == (12000, 9000)
    for operation in ("thumbnail", "features"):
        # 324 MB if decoded at full size; DCT scaling decodes 1/8 of each side.
        assert _peak_mb(operation, path) < 120, operation


def test_only_truly_abusive_sizes_are_refused_with_what_to_do() -> None:
    small = _encode(Image.new("RGB", (16, 16), (1, 2, 3)), "JPEG")
    marker = small.index(b"\xff\xc0")  # start of frame: precision, height, width follow
    huge = bytearray(small)
    huge[marker + 5 : marker + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with pytest.raises(BadImageError, match="save a smaller copy"):
        images.check_image(bytes(huge))
    huge[marker + 5 : marker + 9] = (20000).to_bytes(2, "big") + (16000).to_bytes(2, "big")
    with pytest.raises(BadImageError, match="320 megapixels.*save a smaller copy"):
        images.check_image(bytes(huge))


# ----- issue 17, item 4: decoding bombs by format ------------------------------------------
MAKE_BOMB = """
import sys
from PIL import Image
kind, side, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
flat = Image.new("RGB", (side, side), (200, 30, 30))
if kind == "webp":
    flat.save(path, "WEBP", lossless=True)
elif kind == "progressive":
    flat.save(path, "JPEG", quality=85, progressive=True, subsampling=0)
else:
    import pillow_heif
    pillow_heif.register_heif_opener()
    flat.save(path, "HEIF", quality=50)
"""

CHECK_PEAK = """
import resource, sys
from pathlib import Path
from duetml import images
from duetml.errors import BadImageError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for operation in ("check", "thumbnail", "features"):
    try:
        if operation == "check":
            images.check_image(Path(sys.argv[1]))
        elif operation == "thumbnail":
            images.thumbnail_jpeg(Path(sys.argv[1]), 192)
        else:
            images.load_square(Path(sys.argv[1]), 224)
        print("decoded")
    except BadImageError as exc:
        print(exc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def _bomb(tmp_path: Path, kind: str, side: int) -> Path:
    path = tmp_path / f"{kind}-{side}.{ {'webp': 'webp', 'heic': 'heic'}.get(kind, 'jpg') }"
    subprocess.run([sys.executable, "-c", MAKE_BOMB, kind, str(side), str(path)], check=True)
    return path


@pytest.mark.parametrize(
    ("kind", "side", "words"),
    [
        ("webp", 9450, "9450x9450 WEBP"),  # the 3.5 KB file: 1.42 GB to add
        ("progressive", 8400, "progressive JPEG"),  # 4:4:4: 6 bytes a pixel of coefficients
    ],
)
def test_decoding_bombs_are_refused_from_the_header_without_decoding(
    tmp_path: Path, kind: str, side: int, words: str
) -> None:
    path = _bomb(tmp_path, kind, side)
    assert path.stat().st_size < 2_000_000
    result = subprocess.run(
        [sys.executable, "-c", CHECK_PEAK, str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    *messages, peak = result.stdout.strip().splitlines()
    assert len(messages) == 3
    for message in messages:
        assert words in message and "MB of memory to decode" in message
        assert "save a smaller copy" in message
    assert int(peak) < 60, f"{peak} MB held to refuse a {kind}"


def test_a_heic_above_the_budget_is_refused_and_a_phone_sized_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding a real 64 MP HEIC takes a minute here: a 1200x1200 one is measured against a
    budget scaled down in proportion (7 bytes a pixel, as measured on the 8000x8000 one)."""
    # A 48 MP iPhone HEIC (8064x6048) fits the real budget; the 8000x8000 does not.
    assert 8064 * 6048 * 7 < images.MAX_DECODE_BYTES < 8000 * 8000 * 7
    path = _bomb(tmp_path, "heic", 1200)
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 1200 * 1200 * 7 - 1)
    with pytest.raises(BadImageError, match="1200x1200 HEIF would take about 10 MB"):
        images.heif_to_jpeg(path.read_bytes())
    monkeypatch.setattr(images, "MAX_DECODE_BYTES", 1200 * 1200 * 7)
    assert images.check_image(images.heif_to_jpeg(path.read_bytes())).format == "JPEG"


def test_big_decodes_wait_for_one_of_two_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every decode (thumbnails, /api/image's check, uploads, features) goes through one
    bounded gate: of six big decodes at once, two run and four wait."""
    path = tmp_path / "big.png"
    Image.new("RGB", (600, 600), (1, 2, 3)).save(path)
    monkeypatch.setattr(images, "BIG_DECODE_BYTES", 1000)
    inside = 0
    most = 0
    changed = threading.Condition()
    release = threading.Event()
    real_load = ImageFile.ImageFile.load
    counted = threading.local()  # each decode once (conversions load again, in its thread)

    def load(image: ImageFile.ImageFile) -> object:
        nonlocal inside, most
        if getattr(counted, "done", False):
            return real_load(image)
        counted.done = True
        with changed:
            inside += 1
            most = max(most, inside)
            changed.notify_all()
        release.wait(60)
        try:
            return real_load(image)
        finally:
            with changed:
                inside -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    calls = [
        lambda: images.check_image(path),
        lambda: images.thumbnail_jpeg(path, 64),
        lambda: images.load_square(path, 64),
    ]
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(calls[i % 3]) for i in range(6)]
        with changed:
            assert changed.wait_for(lambda: inside == 2, timeout=60)
            # With no gate the other four would be inside at once; give them the chance.
            assert not changed.wait_for(lambda: inside > 2, timeout=1)
        release.set()
        for future in futures:
            future.result(timeout=60)
    assert most == 2
