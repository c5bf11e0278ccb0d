"""duetml's resize (OpenCV's bilinear, in NumPy: duetml/export_predict.py) beside OpenCV's
own and beside decoding, per photo, on real photos' central squares.

    python bench/bench_resize.py [FOLDER]     # default: the Caltech subset, else the demo

OpenCV is no longer a dependency; where it is installed (`pip install opencv-python-headless`)
it is the reference, and the pixels are checked to be the same.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from duetml.export_predict import central_square, resize_bilinear
from duetml.images import load_rgb

CALTECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"
DEMO = Path(__file__).resolve().parents[1] / "duetml" / "demo_data"


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else CALTECH if CALTECH.is_dir() else DEMO
    photos = sorted(folder.rglob("*.jpg"))[::10][:500]
    start = time.perf_counter()
    squares = [central_square(np.asarray(load_rgb(p, max_side=224))) for p in photos]
    decode = (time.perf_counter() - start) / len(photos)
    squares = [s for s in squares if s.shape[0] != 224]
    try:
        import cv2
    except ImportError:
        cv2 = None
    for round_ in (1, 2):  # the first round also fills the per-shape cache of taps
        start = time.perf_counter()
        ours = [resize_bilinear(s, 224) for s in squares]
        numpy_ms = (time.perf_counter() - start) / len(squares) * 1000
        line = f"round {round_}: NumPy {numpy_ms:.2f} ms/photo"
        if cv2 is not None:
            start = time.perf_counter()
            theirs = [cv2.resize(s, (224, 224), interpolation=cv2.INTER_LINEAR) for s in squares]
            opencv_ms = (time.perf_counter() - start) / len(squares) * 1000
            same = all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
            line += f", OpenCV {opencv_ms:.2f} ms/photo (same pixels: {same})"
        print(line)
    print(f"decoding (the reference): {decode * 1000:.2f} ms/photo; {len(squares)} photos resized")


if __name__ == "__main__":
    main()
