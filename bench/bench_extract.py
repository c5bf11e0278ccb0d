"""Feature extraction throughput, end to end, against ONNX Runtime on pre-decoded tensors.

    python bench/bench_extract.py [PHOTO_FOLDER] [--limit N]

End to end = decode + EXIF + crop/resize + network, through duetml's own pipeline. The
reference is the same ONNX Runtime session running the same backbone on photos that were
decoded beforehand, measured in the same run, so the ratio holds on a noisy shared machine.
Also reports peak memory (RSS) while extracting, to show it stays flat.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

from duetml.backbones import INPUT_SIZE, get_backbone, open_session
from duetml.features import BATCH_SIZE, FeatureExtractor
from duetml.images import IMAGE_EXTENSIONS, load_square

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    args = parser.parse_args()
    photos = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if args.limit:
        photos = photos[: args.limit]
    if not photos:
        sys.exit(f"No photos under {args.folder}")
    extractor = FeatureExtractor(get_backbone(args.backbone))
    extractor.run(np.zeros((BATCH_SIZE, INPUT_SIZE, INPUT_SIZE, 3), np.uint8))  # warm-up

    # Reference: ONNX Runtime alone on 256 pre-decoded photos, cycled to the same count, both
    # with its default settings (spinning threads) and with duetml's; the faster one counts.
    decoded = np.stack([load_square(p, INPUT_SIZE) for p in photos[:256]])
    references = {}
    for label, session in (
        ("ORT defaults", open_session(extractor.backbone, spinning=True)),
        ("duetml's session", extractor.session),
    ):
        start = time.perf_counter()
        done = 0
        while done < len(photos):
            for i in range(0, len(decoded), BATCH_SIZE):
                session.run(None, {"photos": decoded[i : i + BATCH_SIZE]})
                done += len(decoded[i : i + BATCH_SIZE])
                if done >= len(photos):
                    break
        references[label] = done / (time.perf_counter() - start)
    reference_label = max(references, key=references.get)
    reference = references[reference_label]
    del decoded

    baseline_rss = rss_mb()
    peak = [baseline_rss]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], rss_mb())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rss_at = {}
    start = time.perf_counter()
    count = 0
    for count, _result in enumerate(extractor.extract(photos), start=1):
        if count in (len(photos) // 4, len(photos) // 2, len(photos)):
            rss_at[count] = rss_mb()
    end_to_end = count / (time.perf_counter() - start)
    stop.set()
    watcher.join()
    print(f"photos:                          {len(photos)} from {args.folder}")
    print(f"backbone:                        {args.backbone}, batch {BATCH_SIZE}")
    for label, rate in references.items():
        print(f"ONNX Runtime pre-decoded, {label + ':':<17}{rate:7.1f} images/s")
    print(f"reference (the faster):          {reference:7.1f} images/s ({reference_label})")
    print(f"duetml end to end:               {end_to_end:7.1f} images/s")
    print(f"ratio end-to-end / reference:    {end_to_end / reference:7.2f}  (target >= 0.75)")
    print(f"RSS before extraction:           {baseline_rss:7.0f} MB")
    print(
        "RSS during extraction:           "
        + ", ".join(f"{v:.0f} MB after {k}" for k, v in rss_at.items())
    )
    print(f"peak RSS during extraction:      {peak[0]:7.0f} MB (+{peak[0] - baseline_rss:.0f} MB)")
    print(
        f"(ru_maxrss of the whole run:     "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)"
    )


if __name__ == "__main__":
    main()
