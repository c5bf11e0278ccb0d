"""Decoding photos safely and the same way everywhere (import, features, thumbnails).

Only real raster formats are opened (`formats=`), Pillow's decompression-bomb limit is an
error rather than a warning, EXIF orientation is applied before anything looks at the pixels,
and every mode a camera or an editor produces (L, P, RGBA, CMYK, 16-bit) becomes RGB.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from duetml.errors import BadImageError

DECODABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
EXTENSION_OF_FORMAT = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "GIF": ".gif",
    "TIFF": ".tif",
}
MIME_OF_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# A format that must be decoded at full size is refused above Pillow's own default (about 89
# megapixels, at most 4 bytes each once decoded). A JPEG is decoded at 1/2, 1/4 or 1/8 scale
# (DCT scaling) whenever a smaller result is wanted, so modern phone photos (200 megapixels)
# cost a few megabytes; only a size no camera makes is refused.
MAX_PIXELS = 89_478_485
MAX_JPEG_PIXELS = 300_000_000
# Pillow refuses at open above twice its own limit, before duetml can see the format; the
# check per format in `_open` replaces it.
Image.MAX_IMAGE_PIXELS = MAX_JPEG_PIXELS
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# What one decode may hold, estimated from the header before any pixel is decoded (below).
# Pixels alone do not bound it: a 3.5 KB lossless WebP of 9450x9450 held 1.4 GB, a 1.7 MB
# progressive JPEG of 17300x17300 0.9 GB (libjpeg keeps every coefficient of a progressive
# file, whatever the scale asked), an 8000x8000 HEIC 0.45 GB. 400 MB admits an 89 MP PNG
# (4 bytes a pixel), a 48 MP iPhone HEIC and any baseline JPEG up to 300 MP.
MAX_DECODE_BYTES = 400_000_000
# Bytes held per pixel of the full image while decoding formats that cannot decode at a
# reduced scale, measured with bench/bench_image_memory.py: libwebp's canvas, its frame and
# Pillow's copy for WebP (15.3 measured); libheif's planes and the RGB image for HEIF (7.0).
_BYTES_PER_PIXEL = {"WEBP": 16, "HEIF": 7}
# A decode estimated above this waits for one of MAX_CONCURRENT_BIG_DECODES slots, whoever
# asks (thumbnails, /api/image, uploads, `add`, the agents' contact sheets): a photo from a
# phone decodes at once, a few big ones cannot add up. Two, as the page's thumbnail pool.
BIG_DECODE_BYTES = 64_000_000
MAX_CONCURRENT_BIG_DECODES = 2
_big_decodes = threading.BoundedSemaphore(MAX_CONCURRENT_BIG_DECODES)


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSION_OF_FORMAT[self.format]

    @property
    def mime(self) -> str:
        return MIME_OF_FORMAT[self.format]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# HEIC/HEIF, the iPhone's default: the ISO box `ftyp` with one of these brands.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1"}


def is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _register_heif() -> None:
    # pillow-heif takes 0.2 s to import: only when a HEIF file is actually met.
    import pillow_heif

    pillow_heif.register_heif_opener()


def heif_to_jpeg(data: bytes) -> bytes:
    """An iPhone photo (HEIC) as the JPEG duetml stores: browsers, the page's viewer and every
    other tool read JPEG, few read HEIC. libheif applies the file's rotation while decoding;
    metadata (location included) is not carried over."""
    with _open(data) as image, _decode_slot(image):
        out = io.BytesIO()
        to_rgb(image).save(out, format="JPEG", quality=92)
    return out.getvalue()


def _head(source: Path | BinaryIO | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:12]
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            return handle.read(12)
    position = source.tell()
    head = source.read(12)
    source.seek(position)
    return head


def _unreadable_format(source: Path | BinaryIO | bytes) -> str:
    """Name the format of a file duetml cannot read, when Pillow knows it."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as other:
            return other.format or ""
    except Exception:  # only used to word the message: any failure means "unknown"
        return ""


def _open(source: Path | BinaryIO | bytes) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise BadImageError("The file is empty (0 bytes): choose a real photo.")
        source = io.BytesIO(source)
    elif isinstance(source, Path) and source.stat().st_size == 0:
        raise BadImageError("The file is empty (0 bytes): choose a real photo.")
    formats: tuple[str, ...] = DECODABLE_FORMATS
    if is_heif(_head(source)):
        _register_heif()
        formats = (*DECODABLE_FORMATS, "HEIF")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; duetml refuses (checked below).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=formats)
    except UnidentifiedImageError:
        if not isinstance(source, Path):
            source.seek(0)
        named = _unreadable_format(source)
        # "a PPM file, which duetml cannot read" / "not an image duetml can read"
        what = (
            f"This is a {named} file, which duetml cannot"
            if named
            else "This is not an image duetml can"
        )
        raise BadImageError(
            f"{what} read: save it as JPEG or PNG (duetml reads JPEG, PNG, WebP, BMP, GIF, TIFF "
            "and HEIC)."
        ) from None
    except Image.DecompressionBombError:
        raise BadImageError(
            "The image claims far more pixels than any camera makes, too many to decode safely "
            "(a decompression bomb?): if it is a real photo, save a smaller copy (at most 8000 "
            "pixels on the long side) and add that instead."
        ) from None
    except OSError as exc:
        raise BadImageError(f"The image is damaged or truncated ({exc}).") from None
    except Exception as exc:  # noqa: BLE001 - any decoder error is one rejected file
        raise _unreadable(exc) from None
    limit = MAX_JPEG_PIXELS if image.format == "JPEG" else MAX_PIXELS
    if image.width * image.height > limit:
        megapixels = image.width * image.height / 1e6
        image.close()
        raise BadImageError(
            f"The image is {image.width}x{image.height} pixels ({megapixels:,.0f} megapixels), "
            f"more than duetml decodes safely ({limit / 1e6:.0f} megapixels for this format): "
            "save a smaller copy (a JPEG of at most 8000 pixels on the long side is plenty) "
            "and add that instead."
        )
    cost = decode_bytes(image)
    if cost > MAX_DECODE_BYTES:
        image.close()
        kind = "progressive JPEG" if _is_progressive(image) else (image.format or "image")
        raise BadImageError(
            f"This {image.width}x{image.height} {kind} would take about {cost / 1e6:,.0f} MB "
            f"of memory to decode (duetml decodes at most {MAX_DECODE_BYTES / 1e6:.0f} MB): "
            "save a smaller copy, as a JPEG of at most 8000 pixels on the long side, and add "
            "that instead."
        )
    return image


def _unreadable(exc: Exception) -> BadImageError:
    """Whatever a decoder raised (a PNG's zTXt or iCCP chunk inflating past Pillow's limit is
    a ValueError, a damaged TIFF a struct.error...) as a sentence about this one file."""
    detail = str(exc).strip() or type(exc).__name__
    return BadImageError(
        f"The image could not be read ({detail[:160]}): it may be damaged, or use a feature "
        "duetml does not read; save it again as JPEG or PNG."
    )


def _is_progressive(image: Image.Image) -> bool:
    return image.format == "JPEG" and bool(
        image.info.get("progressive") or image.info.get("progression")
    )


def _mode_bytes(mode: str) -> int:
    """Bytes a pixel of this mode takes in a Pillow image (RGB is stored as 4)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode in _SIXTEEN_BIT_MODES:
        return 2
    return 4


def _jpeg_coefficient_bytes(image: Image.Image) -> int:
    """What libjpeg keeps for a progressive JPEG: every DCT coefficient (2 bytes) of every
    8x8 block of every component, padded to whole MCUs, at full size."""
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * 3
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    total = 0
    for _, h, v, _ in layers:
        blocks_wide = math.ceil(image.width / (8 * h_max)) * h
        blocks_high = math.ceil(image.height / (8 * v_max)) * v
        total += blocks_wide * blocks_high * 64 * 2
    return total


def decode_bytes(image: Image.Image) -> int:
    """The memory one decode of this opened (not yet loaded) image holds, at most: from its
    header only. A baseline JPEG decodes at 1/8 scale at the smallest (DCT scaling) and
    streams; a progressive one keeps its coefficients; WebP and HEIF decode whole."""
    pixels = image.width * image.height
    if image.format == "JPEG":
        scaled = pixels * 4 // 64
        return scaled + (_jpeg_coefficient_bytes(image) if _is_progressive(image) else 0)
    per_pixel = _BYTES_PER_PIXEL.get(image.format or "", _mode_bytes(image.mode))
    return pixels * per_pixel


@contextlib.contextmanager
def _decode_slot(image: Image.Image) -> Iterator[None]:
    """Hold one of the few slots for big decodes while this image is decoded (see above)."""
    if decode_bytes(image) <= BIG_DECODE_BYTES:
        yield
        return
    with _big_decodes:
        yield


def check_image(source: Path | BinaryIO | bytes) -> ImageFacts:
    """Decode the whole file (not just its header) so truncated files are caught at import."""
    with _open(source) as image:
        facts = ImageFacts(image.format or "", image.width, image.height)
        try:
            # Draft decoding (JPEG DCT scaling) still reads every byte of the stream, so a
            # truncated file fails here, at a fraction of the cost of a full decode.
            with _decode_slot(image):
                image.draft("RGB", (256, 256))
                image.load()
        except Image.DecompressionBombError:
            raise BadImageError("The image is too large to decode safely.") from None
        except (OSError, SyntaxError) as exc:
            raise BadImageError(f"The image is damaged or truncated ({exc}).") from None
        except Exception as exc:  # noqa: BLE001 - any decoder error is one rejected file
            raise _unreadable(exc) from None
    if facts.format not in EXTENSION_OF_FORMAT:
        raise BadImageError("This image format is not supported: use JPEG or PNG.")
    return facts


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in {"I", "F"}:
        return Image.fromarray(_stretch_to_8bit(image), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _stretch_to_8bit(image: Image.Image) -> np.ndarray:
    """A 16-bit or 32-bit grey image stretched to 0..255, without a float copy at full size:
    16-bit values go through a 65,536-entry lookup table, one byte per pixel out."""
    array = np.asarray(image)
    low, high = array.min(), array.max()
    if array.dtype.itemsize <= 2 and array.dtype.kind in "ui":
        values = np.arange(65536, dtype=np.float32)
        scale = 255.0 / float(high - low) if high > low else 0.0
        table = ((values - float(low)) * scale).clip(0, 255).astype(np.uint8)
        return table[array.astype(np.uint16, copy=False)]
    scale = 255.0 / float(high - low) if high > low else 0.0
    out = np.empty(array.shape, np.uint8)
    for top in range(0, array.shape[0], 256):  # in strips: float32, never float64, never whole
        strip = array[top : top + 256].astype(np.float32)
        out[top : top + 256] = ((strip - float(low)) * scale).clip(0, 255)
    return out


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Box-average a big decoded image down to about ``max_side`` on its short side (never
    below), before any conversion multiplies its bytes per pixel."""
    factor = min(image.size) // max_side
    if factor < 2:
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow cannot reduce 16-bit images: average blocks a strip of rows at a time, so no
        # copy of the whole image is ever made beside the decoded one.
        height, width = image.height // factor, image.width // factor
        out = np.empty((height, width), np.float32)
        rows = max(1, 1024 // factor)
        for top in range(0, height, rows):
            count = min(rows, height - top)
            box = (0, top * factor, width * factor, (top + count) * factor)
            block = np.asarray(image.crop(box))
            shaped = block.reshape(count, factor, width, factor)
            out[top : top + count] = shaped.mean(axis=(1, 3), dtype=np.float32)
        return Image.fromarray(out, "F")
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def load_rgb(source: Path | BinaryIO | bytes, max_side: int | None = None) -> Image.Image:
    """Decode to an upright RGB image. With ``max_side`` the memory it takes is bounded by the
    output, not the input: JPEGs decode at reduced scale (DCT scaling), other formats are
    box-averaged down before their mode is converted, and the short side stays at least
    ``max_side``."""
    with _open(source) as image, _decode_slot(image):
        try:
            if max_side:
                image.draft("RGB", (max_side, max_side))
                image.load()
                image = _shrink(image, max_side)
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
        except Image.DecompressionBombError:
            raise BadImageError("The image is too large to decode safely.") from None
        except (OSError, SyntaxError) as exc:
            raise BadImageError(f"The image is damaged or truncated ({exc}).") from None
        except BadImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder error is one rejected file
            raise _unreadable(exc) from None


def load_square(source: Path | BinaryIO | bytes, size: int) -> np.ndarray:
    """The network input: the central square of the photo at ``size`` x ``size``, uint8 HWC.

    Pillow decodes (formats, EXIF, modes, draft scaling); the resize is OpenCV's bilinear one
    reproduced bit for bit in NumPy (duetml/export_predict.py), the one implementation both
    duetml and an exported predict.py use, so features computed when duetml resized with
    OpenCV stay valid. Always bilinear: draft decoding and `_shrink` leave the short side
    below 2 x ``size``, where area averaging never applied.
    """
    from duetml.export_predict import central_square, resize_bilinear

    square = central_square(np.asarray(load_rgb(source, max_side=size), dtype=np.uint8))
    if square.shape[0] != size:
        return resize_bilinear(square, size)
    return np.ascontiguousarray(square)


def thumbnail_jpeg(source: Path, size: int = 256) -> bytes:
    image = load_rgb(source, max_side=size)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()
