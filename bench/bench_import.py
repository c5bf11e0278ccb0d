"""`duetml init --from` + the first `duetml train`, end to end, against the fp32 way before it.

    python bench/bench_import.py [DATASET_FOLDER] [--categories N]

Takes the first N categories of the dataset (default 20 of the Caltech-101 subset, about
1,000 photos; --categories 0 for all of them) and runs, in the same process:
- the reference: the import as it was before (one disk flush per journal step, per file and
  per folder: `IMPORT_BATCH = 1`), then the first training at fp32;
- duetml now: the import in batches (intents in one flush, files flushed together), then the
  first training at int8.
Also times a plain copy of the same files (shutil.copytree), the floor for any import. The
imports alone are then repeated, the two ways in turn, and each one's best round counts (a
shared machine's disk is busy at times); the end-to-end line adds that import to the training.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from duetml import importing
from duetml.project import Project
from duetml.training import train_project

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"


def run(source: Path, root: Path, precision: str, batch: int) -> tuple[float, float, int]:
    importing.IMPORT_BATCH = batch
    start = time.perf_counter()
    project, report = Project.init(root, from_source=source)
    imported = time.perf_counter() - start
    assert report is not None and not report.rejected, report
    project.set_precision(precision)
    start = time.perf_counter()
    trained = train_project(project)
    return imported, time.perf_counter() - start, trained.images


def import_only(source: Path, root: Path, batch: int) -> float:
    importing.IMPORT_BATCH = batch
    start = time.perf_counter()
    Project.init(root, from_source=source)
    seconds = time.perf_counter() - start
    shutil.rmtree(root)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--categories", type=int, default=20)
    args = parser.parse_args()
    folders = sorted(p for p in args.dataset.iterdir() if p.is_dir())
    if args.categories:
        folders = folders[: args.categories]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        for folder in folders:  # a private copy, so both runs read the same warm files
            shutil.copytree(folder, source / folder.name)
        start = time.perf_counter()
        shutil.copytree(source, Path(tmp) / "copy")
        copy = time.perf_counter() - start
        batched = importing.IMPORT_BATCH
        before = run(source, Path(tmp) / "reference", "fp32", batch=1)
        now = run(source, Path(tmp) / "now", "int8", batch=batched)
        rounds: dict[int, list[float]] = {1: [before[0]], batched: [now[0]]}
        for round_ in range(2):
            for batch in (1, batched):
                rounds[batch].append(import_only(source, Path(tmp) / f"i{round_}", batch))
        before = (min(rounds[1]), before[1], before[2])
        now = (min(rounds[batched]), now[1], now[2])
    photos = before[2]
    print(f"photos:                 {photos} in {len(folders)} categories of {args.dataset}")
    print(f"plain copy (floor):     {copy:6.1f} s")
    print("                        init --from   first train   end to end  (import: best of 3)")
    for label, (imported, trained, _) in (
        ("reference (before, fp32)", before),
        ("duetml now (int8)", now),
    ):
        print(f"{label:<24}{imported:9.1f} s {trained:11.1f} s {imported + trained:10.1f} s")
    print(
        f"speed-up: import {before[0] / now[0]:.2f}x, first train {before[1] / now[1]:.2f}x, "
        f"end to end {(before[0] + before[1]) / (now[0] + now[1]):.2f}x"
    )


if __name__ == "__main__":
    main()
