"""Classify photos with a model exported by duetml (`duetml export`).

Needs only onnxruntime, numpy and pillow:

    python predict.py photo.jpg other.png      # photo.jpg: shoes 95%, hat 4%, pants 0%
    python predict.py --json photo.jpg

duetml copies this file as predict.py beside model.onnx and labels.json; it never imports
duetml, so it runs wherever those three packages do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
SIZE = 224


def _axis_weights(source: int, size: int) -> np.ndarray:
    """(size, source) resampling weights: bilinear (pixel centres aligned) when shrinking at
    most 2x or growing, area averaging when shrinking more, as duetml does with OpenCV."""
    weights = np.zeros((size, source))
    if source > 2 * size:
        scale = source / size
        for out in range(size):
            lo, hi = out * scale, (out + 1) * scale
            for pixel in range(int(np.floor(lo)), min(int(np.ceil(hi)), source)):
                weights[out, pixel] = min(hi, pixel + 1) - max(lo, pixel)
        weights /= weights.sum(axis=1, keepdims=True)
        return weights
    centres = (np.arange(size) + 0.5) * (source / size) - 0.5
    left = np.floor(centres).astype(int)
    fraction = centres - left
    for out in range(size):
        for pixel, weight in ((left[out], 1.0 - fraction[out]), (left[out] + 1, fraction[out])):
            weights[out, min(max(pixel, 0), source - 1)] += weight
    return weights


def load_photo(path: Path) -> np.ndarray:
    """The model's input for one photo: upright, RGB, central square, 224 x 224, uint8."""
    with Image.open(path) as opened:
        opened.draft("RGB", (SIZE, SIZE))  # JPEGs decode at reduced scale, as duetml does
        opened.load()
        image: Image.Image = opened
        factor = min(image.size) // SIZE
        if factor >= 2 and image.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
            image = image.convert("RGBA" if image.mode in ("P", "1") else image.mode)
            image = image.reduce(factor)
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
            image = rgb
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = pixels[top : top + side, left : left + side]
    if side != SIZE:
        weights = _axis_weights(side, SIZE)
        square = np.einsum("ys,sxc->yxc", weights, square)
        square = np.einsum("xs,ysc->yxc", weights, square)
    return np.clip(np.rint(square), 0, 255).astype(np.uint8)


def open_model(folder: Path = HERE) -> tuple[Any, list[str]]:
    import onnxruntime as ort

    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    return session, [str(c) for c in labels["categories"]]


def classify(paths: list[Path], folder: Path = HERE, top: int = 3) -> list[dict[str, Any]]:
    session, categories = open_model(folder)
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            photo = load_photo(path)
        except (OSError, ValueError) as exc:
            results.append({"image": str(path), "error": f"cannot be read ({exc})"})
            continue
        (probabilities,) = session.run(["probabilities"], {"photos": photo[None]})
        row = probabilities[0]
        order = np.argsort(-row)[:top]
        results.append(
            {
                "image": str(path),
                "category": categories[order[0]],
                "confidence": float(row[order[0]]),
                "top": [{"category": categories[i], "probability": float(row[i])} for i in order],
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify photos with the exported model.")
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=3, help="categories shown per photo")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    results = classify(args.photos, top=args.top)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['image']}: {r['error']}")
            else:
                ranked = ", ".join(f"{t['category']} {t['probability']:.0%}" for t in r["top"])
                print(f"{r['image']}: {ranked}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
