"""What the review needs from the pixels themselves, read once per photo content and cached.

Copies are verified on the pixels, never on the CNN features alone (distinct garments on
the same rug have close features), and image quality is measured on them. Both come from one
decode of each photo: JPEG draft mode decodes at 1/2 to 1/8 of the size, and the image is
then brought to DECODE_SIZE pixels on its longer side, so a 12-megapixel photo costs about as
much as a thumbnail. Per photo the cache keeps

- perceptual hashes (imagehash's pHash, 64 bits) of the whole image and of nested central
  crops (CROP_SCALES), for the image and its mirror image: a copy that was re-encoded,
  resized, mirrored or cropped around its centre matches at some pair of scales, and the
  central crops are dominated by the object, not by a shared background;
- the quality measures of quality.py (QUALITY_STATS).

Rows are keyed by the sha256 of the file content and kept in .duetml/cache/review-pixels.npz
(a few dozen bytes per photo: 26,000 photos make about 3 MB), rewritten atomically when new
photos were read. A photo that cannot be decoded gets no row and is skipped by both checks.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from duetml import atomic

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

PIXELS_FILE = "cache/review-pixels.npz"
PIXELS_VERSION = 3  # bump when what is measured changes: the cached rows are then re-read
DECODE_SIZE = 256  # pixels on the longer side every measure is taken at
# Central crops, each 0.9 of the one before (side): a crop of a crop keeps the same ratio, so
# a tighter copy of a photo lines up with the original one or more steps further in. Steps of
# 0.8 left a 5% crop on each side halfway between two steps (12-18 bits apart, measured).
CROP_SCALES = tuple(round(0.9**step, 4) for step in range(8))
PHASH_SIZE = 8  # imagehash's default: 64-bit hashes
# A finer pHash (256 bits) of the crops a copy is compared at as a whole: two airliners in
# one pose on a blue sky, or two starfish on white, share the coarse one (seen on Caltech).
FINE_SIZE = 16
FINE_CROPS = 4
FINE_WORDS = FINE_SIZE * FINE_SIZE // 64
HASH_WIDTH = 2 * len(CROP_SCALES) + 2 * FINE_CROPS * FINE_WORDS
QUALITY_STATS = (
    "width",  # of the file, before decoding small
    "height",
    "bright_p99",  # 99th percentile of the luminance (0-255): the brightest part
    "bright_p01",  # 1st percentile: the darkest part
    "bright_mean",
    "sharp_tiles",  # 2nd-highest of 4x4 tiles' Laplacian variance: the sharpest part
    "entropy",  # bits of the grey-level histogram
    "colour",  # mean absolute difference between the colour channels (0: grey)
)


def _decode(path: Path) -> Image.Image | None:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            size = image.size
            image.draft("RGB", (DECODE_SIZE, DECODE_SIZE))
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        return None
    rgb.thumbnail((DECODE_SIZE, DECODE_SIZE), Image.Resampling.BILINEAR)
    rgb.info["source_size"] = size
    return rgb


def _phash_bits(crops: list[Image.Image], size: int) -> np.ndarray:
    """imagehash's `phash` with hash_size=size of each crop and of its mirror image (a
    size*4 square Lanczos resize, 2-D DCT, the size x size lowest frequencies against their
    median), in one batch: (2 * len(crops), size * size) booleans, mirrors second. Separate
    `imagehash.phash` calls cost 12 ms a photo; tests/test_review.py checks the bits agree."""
    import numpy as np
    from PIL import Image
    from scipy.fft import dct

    side = size * 4
    stack = np.stack(
        [np.asarray(c.resize((side, side), Image.Resampling.LANCZOS), np.float64) for c in crops]
    )
    stack = np.concatenate([stack, stack[:, :, ::-1]])
    low = dct(dct(stack, axis=1), axis=2)[:, :size, :size].reshape(len(stack), -1)
    bits: np.ndarray = low > np.median(low, axis=1)[:, None]
    return bits


def _hashes(grey: Image.Image) -> list[int]:
    """The hash row of a photo: the coarse pHash (64 bits) of each central crop, plain then
    mirrored, then the fine pHash (FINE_SIZE, as FINE_WORDS 64-bit words) of the first
    FINE_CROPS crops, plain then mirrored."""
    import numpy as np

    w, h = grey.size
    crops = []
    for scale in CROP_SCALES:
        cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
        left, top = (w - cw) // 2, (h - ch) // 2
        crops.append(grey.crop((left, top, left + cw, top + ch)))
    weights = 1 << np.arange(63, -1, -1, dtype=np.uint64)

    def words(bits: np.ndarray) -> list[int]:
        chunks = bits.reshape(-1, 64).astype(np.uint64)
        return [int(v) for v in (chunks * weights).sum(1, dtype=np.uint64)]

    return words(_phash_bits(crops, PHASH_SIZE)) + words(_phash_bits(crops[:FINE_CROPS], FINE_SIZE))


def _quality(rgb: Image.Image) -> list[float]:
    import numpy as np

    width, height = rgb.info["source_size"]
    pixels = np.asarray(rgb, dtype=np.float32)
    luminance = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    p01, p99 = np.percentile(luminance, [1, 99])
    # Laplacian of the grey image (4-neighbour stencil), variance per tile: a uniform
    # background (a product shot on white) has flat tiles, the object sharp ones, so the
    # sharpest tiles say whether the photo is in focus (CleanVision's known false alarm).
    lap = (
        -4 * luminance[1:-1, 1:-1]
        + luminance[:-2, 1:-1]
        + luminance[2:, 1:-1]
        + luminance[1:-1, :-2]
        + luminance[1:-1, 2:]
    )
    tiles = []
    h, w = lap.shape
    for rows in np.array_split(np.arange(h), 4):
        for cols in np.array_split(np.arange(w), 4):
            if len(rows) and len(cols):
                tiles.append(float(lap[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].var()))
    tiles.sort()
    sharp = tiles[-2] if len(tiles) >= 2 else (tiles[0] if tiles else 0.0)
    counts = np.bincount(np.clip(luminance, 0, 255).astype(np.int64).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    colour = float(
        (
            np.abs(pixels[..., 0] - pixels[..., 1])
            + np.abs(pixels[..., 1] - pixels[..., 2])
            + np.abs(pixels[..., 0] - pixels[..., 2])
        ).mean()
        / 3.0
    )
    return [
        float(width),
        float(height),
        float(p99),
        float(p01),
        float(luminance.mean()),
        sharp,
        entropy,
        colour,
    ]


def measure(path: Path) -> tuple[list[int], list[float]] | None:
    """(perceptual hashes, quality measures) of one photo; None when it cannot be decoded."""
    rgb = _decode(path)
    if rgb is None:
        return None
    return _hashes(rgb.convert("L")), _quality(rgb)


class PixelFacts:
    """The cached rows of some photos: `hashes[i]` (HASH_WIDTH uint64, see `_hashes`) and
    `stats[i]` (QUALITY_STATS) of the photo with content hash `keys[i]`."""

    def __init__(self, keys: Sequence[str], hashes: np.ndarray, stats: np.ndarray) -> None:
        self.row = {key: i for i, key in enumerate(keys)}
        self.hashes = hashes
        self.stats = stats

    def stat(self, key: str, name: str) -> float | None:
        i = self.row.get(key)
        return None if i is None else float(self.stats[i, QUALITY_STATS.index(name)])


def _read(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    import numpy as np

    width = HASH_WIDTH
    empty: tuple[list[str], np.ndarray, np.ndarray] = (
        [],
        np.zeros((0, width), dtype=np.uint64),
        np.zeros((0, len(QUALITY_STATS)), dtype=np.float32),
    )
    try:
        with np.load(path, allow_pickle=False) as stored:
            if int(stored["version"]) != PIXELS_VERSION:
                return empty
            keys = [str(k) for k in stored["keys"]]
            hashes = np.asarray(stored["hashes"], dtype=np.uint64)
            stats = np.asarray(stored["stats"], dtype=np.float32)
    except (OSError, ValueError, KeyError, TypeError):
        return empty
    if hashes.shape != (len(keys), width) or stats.shape != (len(keys), len(QUALITY_STATS)):
        return empty
    return keys, hashes, stats


def _store(path: Path, new: Sequence[tuple[str, tuple[list[int], list[float]]]]) -> PixelFacts:
    """Add measured rows to the cache file (read again now: another process may have added
    some meanwhile) and return all rows."""
    import numpy as np

    keys, hashes, stats = _read(path)
    known = set(keys)
    new = [(k, m) for k, m in dict(new).items() if k not in known]
    if new:
        keys = keys + [k for k, _ in new]
        hashes = np.vstack([hashes, np.array([m[0] for _, m in new], dtype=np.uint64)])
        stats = np.vstack([stats, np.array([m[1] for _, m in new], dtype=np.float32)])
        buffer = io.BytesIO()
        np.savez(
            buffer,
            version=np.array(PIXELS_VERSION),
            keys=np.array(keys),
            hashes=hashes,
            stats=stats,
        )
        try:
            atomic.write_bytes(path, buffer.getvalue())
        except OSError:
            pass  # only a cache
    return PixelFacts(keys, hashes, stats)


def pixel_facts(state_dir: Path, photos: Sequence[tuple[str, Path]]) -> PixelFacts:
    """The rows of these (content hash, path) photos, reading only those not cached yet."""
    path = state_dir / PIXELS_FILE
    keys, hashes, stats = _read(path)
    known = set(keys)
    wanted = {key: file for key, file in photos if key not in known}
    if not wanted:
        return PixelFacts(keys, hashes, stats)
    with ThreadPoolExecutor(max_workers=2) as pool:  # PIL decodes without the GIL
        measured = list(pool.map(measure, wanted.values()))
    return _store(path, [(k, m) for k, m in zip(wanted, measured, strict=True) if m is not None])


class PixelRecorder:
    """Measures photos while feature extraction decodes them (`features.fill_cache`'s
    ``also``), so the first review after a training finds them cached: the review's one
    decode per photo then runs in the extraction's decode threads, beside the network.

        recorder = PixelRecorder(project.state_dir)
        fill_cache(cache, items, backbone, progress, also=recorder)
        recorder.save()
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / PIXELS_FILE
        self._known = set(_read(self.path)[0])
        self._rows: dict[str, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, file: Path) -> None:
        if key in self._known or key in self._rows:
            return
        measured = measure(file)
        if measured is not None:
            with self._lock:
                self._rows[key] = measured

    def save(self) -> None:
        with self._lock:
            rows = list(self._rows.items())
            self._rows = {}
        if rows:
            self._known |= set(_store(self.path, rows).row)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcast)."""
    import numpy as np

    bits: np.ndarray = np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)
    return bits
