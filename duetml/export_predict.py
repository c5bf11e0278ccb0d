"""Classify photos with a model exported by duetml (`duetml export`).

Needs only onnxruntime, numpy and pillow:

    python predict.py photo.jpg other.png      # photo.jpg: shoes 95%, hat 4%, pants 0%
    python predict.py --json photo.jpg         # with "not_sure" and "reason"
    python predict.py --no-abstain photo.jpg   # never "not sure": the most likely category

duetml copies this file as predict.py beside model.onnx and labels.json; it never imports
duetml, so it runs wherever those three packages do.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
SIZE = 224
# The raster formats duetml itself accepts: Pillow would otherwise open anything it knows,
# EPS included, which it hands to Ghostscript where that is installed.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


def _taps(source: int, size: int, clamp_weights: bool) -> tuple[np.ndarray, ...]:
    """OpenCV's INTER_LINEAR taps for one axis: (first, second) source index and their 11-bit
    fixed-point weights per output pixel. Pixel centres are aligned; OpenCV resets the weight
    at the left and right borders, but not at the top and bottom (it only clamps the rows)."""
    position = ((np.arange(size) + 0.5) * (1.0 / (size / source)) - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.intp)
    fraction = position - first.astype(np.float32)
    if clamp_weights:
        fraction[first < 0] = 0
        first[first < 0] = 0
        fraction[first >= source - 1] = 0
        first[first >= source - 1] = source - 1
    second_weight = np.rint(fraction * np.float32(2048)).astype(np.int32)
    first_weight = np.rint((np.float32(1) - fraction) * np.float32(2048)).astype(np.int32)
    return (
        np.clip(first, 0, source - 1),
        np.clip(first + 1, 0, source - 1),
        first_weight,
        second_weight,
    )


@functools.lru_cache(maxsize=256)
def _plan(height: int, width: int, size: int) -> tuple[np.ndarray, ...]:
    """The taps of one resize, per source shape (photos repeat a few shapes): flat indices
    into a row of HWC pixels for the first and second source column of each output value,
    their weights, the source rows needed, and where each output row's two rows are."""
    x0, x1, a0, a1 = _taps(width, size, clamp_weights=True)
    y0, y1, b0, b1 = _taps(height, size, clamp_weights=False)
    channel = np.arange(3)
    # Only the source rows the output needs, in order (np.union1d's result; it would import
    # numpy.ma, 6 ms of a cold `duetml predict`, to check for masked arrays).
    needed = np.zeros(height, dtype=bool)
    needed[y0] = needed[y1] = True
    rows = np.flatnonzero(needed)
    where = np.searchsorted(rows, np.arange(height))
    return (
        (x0[:, None] * 3 + channel).ravel(),
        (x1[:, None] * 3 + channel).ravel(),
        np.repeat(a0, 3),
        np.repeat(a1, 3),
        rows,
        where[y0],
        where[y1],
        b0[:, None],
        b1[:, None],
    )


def resize_bilinear(pixels: np.ndarray, size: int = SIZE) -> np.ndarray:
    """OpenCV's ``cv2.resize(pixels, (size, size), interpolation=cv2.INTER_LINEAR)`` for
    uint8 HWC RGB pixels, bit for bit, in NumPy; duetml's own resize (duetml/images.py), so
    predict.py feeds a model exactly the pixels duetml did. OpenCV's 8-bit path works in fixed
    point: 11-bit weights, the row pass kept in integers, the column pass as its SIMD code does
    it, on values shifted right by 4: (((a >> 4) * w >> 16) + ((b >> 4) * w' >> 16) + 2) >> 2.
    The rows are handled flat (H, W*3), whose column gathers are about 4x faster here than
    gathering pixels of an (H, W, 3) array, in place where possible."""
    height, width = pixels.shape[:2]
    first, second, a0, a1, rows, top, bottom, b0, b1 = _plan(height, width, size)
    flat = pixels[rows].reshape(len(rows), width * 3)
    across = np.take(flat, first, axis=1).astype(np.int32)
    across *= a0
    right = np.take(flat, second, axis=1).astype(np.int32)
    right *= a1
    across += right
    across >>= 4
    out = across[top]
    out *= b0
    out >>= 16
    lower = across[bottom]
    lower *= b1
    lower >>= 16
    out += lower
    out += 2
    out >>= 2
    np.clip(out, 0, 255, out=out)
    resized: np.ndarray = out.astype(np.uint8).reshape(size, size, 3)
    return resized


def central_square(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square: np.ndarray = pixels[top : top + side, left : left + side]
    return square


def load_photo(path: Path) -> np.ndarray:
    """The model's input for one photo: upright, RGB, central square, 224 x 224, uint8; the
    same steps as duetml's own (duetml/images.py load_rgb and load_square)."""
    with Image.open(path, formats=FORMATS) as opened:
        opened.draft("RGB", (SIZE, SIZE))  # JPEGs decode at reduced scale, as duetml does
        opened.load()
        image: Image.Image = opened
        factor = min(image.size) // SIZE
        if factor >= 2 and image.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
            if image.mode == "1":
                image = image.convert("L")
            elif image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            image = image.reduce(factor)
        image = ImageOps.exif_transpose(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            rgba = image.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
            image = rgb
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    square = central_square(pixels)
    if square.shape[0] != SIZE:
        square = resize_bilinear(square, SIZE)
    return np.ascontiguousarray(square)


def open_model(folder: Path = HERE) -> tuple[Any, list[str], dict[str, Any] | None]:
    """The ONNX session, the categories, and the "not sure" rule (None: the model has none)."""
    import onnxruntime as ort

    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    rule = labels.get("not_sure")
    return session, [str(c) for c in labels["categories"]], rule if rule else None


def not_sure_reason(
    rule: dict[str, Any] | None, distance: float | None, confidence: float
) -> str | None:
    """duetml's rule: unlike every category (too far from the training photos), else too
    close to call (top probability at or below the cross-validated floor), else None."""
    if rule is None or distance is None:
        return None
    if distance > float(rule["distance_threshold"]):
        return "unlike_every_category"
    if confidence <= float(rule["probability_floor"]):
        return "too_close_to_call"
    return None


def classify(
    paths: list[Path], folder: Path = HERE, top: int = 3, abstain: bool = True
) -> list[dict[str, Any]]:
    session, categories, rule = open_model(folder)
    rule = rule if abstain else None
    outputs = ["probabilities"] + ([rule["output"]] if rule else [])
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            photo = load_photo(path)
        except (OSError, ValueError) as exc:
            results.append({"image": str(path), "error": f"cannot be read ({exc})"})
            continue
        ran = session.run(outputs, {"photos": photo[None]})
        row = ran[0][0]
        distance = float(ran[1][0]) if rule else None
        order = np.argsort(-row)[:top]
        reason = not_sure_reason(rule, distance, float(row[order[0]]))
        results.append(
            {
                "image": str(path),
                "category": categories[order[0]],
                "confidence": float(row[order[0]]),
                "not_sure": reason is not None,
                "reason": reason,
                "top": [{"category": categories[i], "probability": float(row[i])} for i in order],
            }
        )
    return results


REASON_TEXT = {
    "unlike_every_category": "unlike the training photos of every category",
    "too_close_to_call": "too close to call between categories",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify photos with the exported model.")
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=3, help="categories shown per photo")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--no-abstain",
        action="store_true",
        help='always name the most likely category, never answer "not sure"',
    )
    args = parser.parse_args(argv)
    results = classify(args.photos, top=args.top, abstain=not args.no_abstain)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['image']}: {r['error']}")
            elif r["not_sure"]:
                closest = f"{r['category']} {r['confidence']:.0%}"
                why = REASON_TEXT.get(r["reason"], r["reason"])
                print(f"{r['image']}: not sure (closest: {closest}): {why}")
            else:
                ranked = ", ".join(f"{t['category']} {t['probability']:.0%}" for t in r["top"])
                print(f"{r['image']}: {ranked}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
