"""Decoding photos safely and the same way everywhere (import, features, thumbnails).

Only real raster formats are opened (`formats=`), Pillow's decompression-bomb limit is an
error rather than a warning, EXIF orientation is applied before anything looks at the pixels,
and every mode a camera or an editor produces (L, P, RGBA, CMYK, 16-bit) becomes RGB.
"""

from __future__ import annotations

import hashlib
import io
import warnings
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
# Pillow's own default (about 89 megapixels), enforced as an error, not a warning.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


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


def _open(source: Path | BinaryIO | bytes) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise BadImageError("The file is empty (0 bytes): choose a real photo.")
        source = io.BytesIO(source)
    elif isinstance(source, Path) and source.stat().st_size == 0:
        raise BadImageError("The file is empty (0 bytes): choose a real photo.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit; duetml refuses (checked below).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=DECODABLE_FORMATS)
    except UnidentifiedImageError:
        raise BadImageError(
            "This is not an image duetml can read (JPEG, PNG, WebP, BMP, GIF or TIFF)."
        ) from None
    except Image.DecompressionBombError:
        raise BadImageError(
            "The image is too large to decode safely (a decompression bomb?)."
        ) from None
    except OSError as exc:
        raise BadImageError(f"The image is damaged or truncated ({exc}).") from None
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise BadImageError(
            f"The image is {image.width}x{image.height} pixels, more than duetml decodes safely "
            f"({MAX_PIXELS:,} pixels): downscale it first."
        )
    return image


def check_image(source: Path | BinaryIO | bytes) -> ImageFacts:
    """Decode the whole file (not just its header) so truncated files are caught at import."""
    with _open(source) as image:
        facts = ImageFacts(image.format or "", image.width, image.height)
        try:
            # Draft decoding (JPEG DCT scaling) still reads every byte of the stream, so a
            # truncated file fails here, at a fraction of the cost of a full decode.
            image.draft("RGB", (256, 256))
            image.load()
        except Image.DecompressionBombError:
            raise BadImageError("The image is too large to decode safely.") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadImageError(f"The image is damaged or truncated ({exc}).") from None
    if facts.format not in EXTENSION_OF_FORMAT:
        raise BadImageError("This image format is not supported: use JPEG or PNG.")
    return facts


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        gray = ((array - low) * scale).clip(0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load_rgb(source: Path | BinaryIO | bytes, max_side: int | None = None) -> Image.Image:
    """Decode to an upright RGB image; with ``max_side`` JPEGs decode at reduced scale."""
    with _open(source) as image:
        try:
            if max_side:
                image.draft("RGB", (max_side, max_side))
            upright = ImageOps.exif_transpose(image)
            return to_rgb(upright)
        except Image.DecompressionBombError:
            raise BadImageError("The image is too large to decode safely.") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadImageError(f"The image is damaged or truncated ({exc}).") from None


def load_square(source: Path | BinaryIO | bytes, size: int) -> np.ndarray:
    """The network input: the central square of the photo at ``size`` x ``size``, uint8 HWC.

    Pillow decodes (formats, EXIF, modes, draft scaling); OpenCV crops and resizes, because
    its bilinear resize is about 3x faster than Pillow's here and resizing, not decoding,
    was the larger half of the cost per photo (bench/bench_extract.py).
    """
    import cv2

    pixels = np.asarray(load_rgb(source, max_side=size), dtype=np.uint8)
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square: np.ndarray = pixels[top : top + side, left : left + side]
    if side != size:
        # Draft decoding already shrank big JPEGs by up to 8x; area averaging covers the rest.
        interpolation = cv2.INTER_AREA if side > 2 * size else cv2.INTER_LINEAR
        square = cv2.resize(square, (size, size), interpolation=interpolation)
    return np.ascontiguousarray(square)


def thumbnail_jpeg(source: Path, size: int = 256) -> bytes:
    image = load_rgb(source, max_side=size)
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82, optimize=True)
    return out.getvalue()
