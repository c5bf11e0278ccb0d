"""The first review after a training: its pixel measures taken during feature extraction
(pixels.PixelRecorder), against taking them in the review itself, as before.

    python bench/bench_review_first.py [--photos N]

Two fresh copies of a Caltech project (N photos, the same in both; no feature cache, so the
training extracts every photo) are trained and then reviewed once. "before": the recorder is
switched off, so the review decodes every photo for its perceptual hashes and quality
measures; "after": they were taken in the extraction's decode threads. Printed beside each:
the training time of the same run (the reference, and the price of the change).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from duetml.project import Project
from duetml.review import review_project
from duetml.review.pixels import PixelRecorder
from duetml.settings import default_settings, write_settings
from duetml.training import train_project

DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
    Path("../shared/data"),
)
CALTECH = DATA / "caltech101-subset"


def build(root: Path, photos: int) -> None:
    categories = sorted(p for p in CALTECH.iterdir() if p.is_dir())
    per_category = max(2, photos // len(categories))
    for category in categories:
        folder = root / "train" / category.name
        folder.mkdir(parents=True)
        for photo in sorted(category.glob("*.jpg"))[:per_category]:
            shutil.copyfile(photo, folder / photo.name)
    write_settings(root, default_settings("bench: first review"))


def run(root: Path, record: bool) -> tuple[float, float, float]:
    project = Project.open(root)
    started = time.perf_counter()
    if record:
        train_project(project)
    else:
        with mock.patch.object(PixelRecorder, "__call__", lambda self, key, file: None):
            train_project(project)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    review_project(project)
    first = time.perf_counter() - started
    started = time.perf_counter()
    review_project(project)
    return train_seconds, first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating before/after pairs")
    args = parser.parse_args()
    if not CALTECH.is_dir():
        sys.exit(f"The shared data is missing: {CALTECH}.")
    # Alternating order (before, after, then after, before): a shared machine's load drifts.
    order = [("before", False), ("after", True)]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, record in order if round_ % 2 == 0 else order[::-1]:
                root = Path(tmp) / f"{name}-{round_}"
                build(root, args.photos)
                train_seconds, first, again = run(root, record)
                photos = len(Project.open(root).images("train"))
                shutil.rmtree(root)
                lines.append(
                    f"round {round_} {name:>6}: {photos} photos, training {train_seconds:6.1f} s "
                    f"(reference), first review {first:6.2f} s ({first / train_seconds:.2f} of "
                    f"training), again {again:.3f} s"
                )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
