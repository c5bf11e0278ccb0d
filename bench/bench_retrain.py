"""Re-training after adding 5 photos to a 1,000-photo project: extracts only those 5.

    python bench/bench_retrain.py [DATASET_FOLDER]

Reference in the same run: the first training of the same project (all 1,000 extracted).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from duetml.images import IMAGE_EXTENSIONS
from duetml.project import Project
from duetml.training import train_project

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    categories = sorted(p for p in source.iterdir() if p.is_dir())
    photos = {
        c.name: sorted(q for q in c.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS)
        for c in categories
    }
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "dataset"
        extra = []
        total = 0
        for name, files in photos.items():
            if total >= 1000:
                break
            (dataset / name).mkdir(parents=True)
            take = files[: min(50, 1000 - total)]
            for f in take:
                shutil.copy(f, dataset / name / f.name)
            total += len(take)
            extra += [(name, f) for f in files[len(take) :]]
        project, _ = Project.init(Path(tmp) / "project", from_source=dataset)
        start = time.perf_counter()
        first = train_project(project)
        first_seconds = time.perf_counter() - start
        for name, f in extra[:5]:
            project.add_images(name, [f])
        start = time.perf_counter()
        second = train_project(project)
        second_seconds = time.perf_counter() - start
    print(
        f"first training:   {first.images} photos, {first.extracted} extracted, "
        f"{first_seconds:.2f} s (reference)"
    )
    print(
        f"after adding 5:   {second.images} photos, {second.extracted} extracted, "
        f"{second_seconds:.2f} s (target < 2 s)"
    )
    print(f"ratio:            {second_seconds / first_seconds:.3f} of the first training")
    print(f"CV accuracy:      {first.cv_accuracy:.4f} -> {second.cv_accuracy:.4f}")


if __name__ == "__main__":
    main()
