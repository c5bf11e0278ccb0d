"""Peak memory of decoding big photos: thumbnails (the page) and feature decoding (training).

    python bench/bench_image_memory.py [--skip-200mp]

The images are made at run time in a temp folder: a normal 1 MP phone photo (the reference),
a 108 MP and a 200 MP JPEG (modern phone cameras), and the 9400x9400 16-bit grey PNG of issue 7
(172 KB on disk, 177 MB of pixels). Each operation runs in a fresh process and reports its
peak resident memory above what the process held after its imports, so the figures do not
depend on each other; the last rows ask the web server's thumbnail cache for six thumbnails of
the 16-bit PNG at once, as the page does. Memory should follow the output size (a 192 px
thumbnail, a 224 px network input), not the input.

Issue 17 adds the formats that cannot decode at reduced scale: a lossless WebP, a progressive
JPEG (libjpeg keeps every coefficient) and a HEIC, each at the size of the bomb the second
attack used (refused from the header: the peak is what refusing costs) and at a size that is
accepted, and four checks of the accepted WebP at once (four /api/image requests: two decode,
two wait for a slot).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

MAKE = """
import sys
import numpy as np
from PIL import Image
kind, width, height, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :]
if kind == "png16":
    rows = (np.linspace(0, 1, height, dtype=np.float32)[:, None] * 20000).astype(np.uint16)
    Image.fromarray((ramp * 40000).astype(np.uint16) + rows).save(path, "PNG")
elif kind == "webp":  # lossless and flat: a few KB on disk (the bomb of issue 17)
    Image.new("RGB", (width, height), (200, 30, 30)).save(path, "WEBP", lossless=True)
elif kind == "heic":  # flat: a few KB on disk, every pixel decoded
    import pillow_heif
    pillow_heif.register_heif_opener()
    Image.new("RGB", (width, height), (30, 120, 200)).save(path, "HEIF", quality=50)
elif kind == "progressive":  # flat, progressive: the decoder keeps every coefficient
    Image.new("RGB", (width, height), (90, 90, 30)).save(
        path, "JPEG", quality=85, progressive=True
    )
else:
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = (ramp * 255).astype(np.uint8)
    pixels[..., 1] = 90
    pixels[..., 2] = np.linspace(0, 255, height, dtype=np.float32)[:, None].astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=85)
"""

MEASURE = """
import resource, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from duetml import images
from duetml.errors import BadImageError
from duetml.web.thumbs import ThumbnailCache
operation, path = sys.argv[1], Path(sys.argv[2])
import numpy, PIL.JpegImagePlugin, PIL.PngImagePlugin, PIL.WebPImagePlugin  # before
if path.suffix == ".heic":
    import pillow_heif
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
outcome = "ok"
try:
    if operation == "thumbnail":
        images.thumbnail_jpeg(path, 192)
    elif operation == "features":
        if path.suffix == ".heic":  # `add` stores an iPhone photo as the JPEG it makes
            images.load_square(images.heif_to_jpeg(path.read_bytes()), 224)
        else:
            images.check_image(path)
            images.load_square(path, 224)
    elif operation == "checks":  # four /api/image requests at once
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: images.check_image(path), range(4)))
    else:  # six thumbnails requested at once through the server's cache
        import tempfile
        state = Path(tempfile.mkdtemp())
        cache = ThumbnailCache(state)
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda i: cache.get(f"{i:064x}", path), range(6)))
except BadImageError:
    outcome = "refused"
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - before) / 1024:.0f} {elapsed:.2f} {outcome}")
"""


SUFFIX = {"png16": "png", "webp": "webp", "heic": "heic"}


def make(folder: Path, kind: str, width: int, height: int) -> Path:
    path = folder / f"{kind}-{width}x{height}.{SUFFIX.get(kind, 'jpg')}"
    subprocess.run(
        [sys.executable, "-c", MAKE, kind, str(width), str(height), str(path)], check=True
    )
    return path


def measure(operation: str, path: Path) -> tuple[float, float]:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, operation, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{operation} on {path.name} failed:\n{result.stderr}")
    peak, seconds, outcome = result.stdout.split()
    return float(peak), float(seconds), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-200mp", action="store_true", help="Leave out the 200 MP JPEG.")
    parser.add_argument(
        "--skip-heic", action="store_true", help="Leave out HEIC (encoding takes a minute)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="duetml-bench-memory-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        cases = [
            ("1 MP JPEG (reference)", make(folder, "jpeg", 1200, 900)),
            ("108 MP JPEG (12000x9000)", make(folder, "jpeg", 12000, 9000)),
        ]
        if not args.skip_200mp:
            cases.append(("200 MP JPEG (16320x12240)", make(folder, "jpeg", 16320, 12240)))
        cases.append(("16-bit PNG (9400x9400)", make(folder, "png16", 9400, 9400)))
        # Issue 17: formats that cannot decode at reduced scale, the bomb and the largest
        # size accepted. Flat images, so each is a few KB on disk.
        bombs = [
            ("lossless WebP 9450x9450", make(folder, "webp", 9450, 9450)),
            ("lossless WebP 5000x5000", make(folder, "webp", 5000, 5000)),
            ("progressive JPEG 17300^2", make(folder, "progressive", 17300, 17300)),
            ("progressive JPEG 8000x6000", make(folder, "progressive", 8000, 6000)),
        ]
        if not args.skip_heic:
            bombs += [
                ("HEIC 8000x8000", make(folder, "heic", 8000, 8000)),
                ("HEIC 4032x3024 (iPhone)", make(folder, "heic", 4032, 3024)),
            ]
        print(f"made {len(cases) + len(bombs)} images in {time.perf_counter() - started:.0f} s")
        print(
            f"{'image':<28} {'operation':<22} {'peak MB':>8} {'x 1 MP':>7} "
            f"{'full-size pixels MB':>20} {'s':>6}"
        )
        reference: dict[str, float] = {}
        rows = [(label, path, op) for label, path in cases for op in ("thumbnail", "features")]
        rows.append((cases[-1][0], cases[-1][1], "6 thumbnails at once"))
        rows += [(label, path, op) for label, path in bombs for op in ("thumbnail", "features")]
        rows.append((bombs[1][0], bombs[1][1], "4 checks at once"))
        for label, path, operation in rows:
            kind = {"6 thumbnails at once": "concurrent", "4 checks at once": "checks"}.get(
                operation, operation
            )
            peak, seconds, outcome = measure(kind, path)
            if outcome == "refused":
                operation += " (refused)"
            reference.setdefault(kind, max(peak, 1.0))
            base = reference.get("thumbnail" if kind in ("concurrent", "checks") else kind, 1.0)
            # What one decode at full size holds: the floor without scaled decoding.
            Image.MAX_IMAGE_PIXELS = None  # the header only, of images this script made
            if path.suffix == ".heic":
                import pillow_heif

                pillow_heif.register_heif_opener()
            with Image.open(path) as image:
                channels = 2 if image.mode.startswith("I;16") else 3
                full = image.width * image.height * channels / 1e6
            print(
                f"{label:<28} {operation:<22} {peak:>8.0f} {peak / base:>7.0f} "
                f"{full:>20.0f} {seconds:>6.2f}"
            )


if __name__ == "__main__":
    main()
