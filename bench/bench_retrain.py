"""Re-training a large project after adding 5 photos, beside a full selection on the same data.

    python bench/bench_retrain.py [TRAINED_PROJECT] [--build-from DATASET]

TRAINED_PROJECT is a trained duetml project (default /tmp/duetml-bench-caltech, built from
../shared/data/caltech101-subset and trained once if absent; never inside the repository).
The bench works on a copy: it adds 5 mirrored photos and trains (a small change: the final
model is fitted with the previous kernel, C and calibration, and the last cross-validation is
extended with the 5 new photos, each predicted by the previous model), then trains the same
data again with a full selection and a fresh cross-validation ("the SVM part of a first
training": features are cached in both), whose accuracy is printed beside. Both are
timed in wall seconds and CPU seconds (all threads), and beside them a fixed unit of work
measured in the same run (the n x n Gram product in float64), so the ratios hold on a busy
machine where wall seconds do not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from duetml.prediction import load_model
from duetml.project import Project
from duetml.training import earlier_cross_validation, feature_cache, train_project

DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"
DEFAULT = Path(tempfile.gettempdir()) / "duetml-bench-caltech"


def timed(fn):  # noqa: ANN001, ANN201
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--build-from", type=Path, default=DATASET)
    args = parser.parse_args()
    if not (args.project / ".duetml").is_dir():
        print(f"building {args.project} from {args.build_from} (once)...", flush=True)
        project, _ = Project.init(args.project, from_source=args.build_from)
        train_project(project)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        shutil.copytree(args.project, root, symlinks=True)
        project = Project.open(root)
        if earlier_cross_validation(load_model(project)) is None:
            print("training once first: the model predates extendable cross-validation", flush=True)
            train_project(project)
        records = project.images("train")
        category = max({r.category for r in records}, key=lambda c: c)
        staging = Path(tmp) / "new"
        staging.mkdir()
        for record in [r for r in records if r.category == category][:5]:
            with Image.open(record.path) as photo:
                photo.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
                    staging / f"mirrored-{record.path.stem}.jpg", quality=92
                )
        project.add_images(category, sorted(staging.iterdir()))

        # Reference unit of work, same run: the n x n Gram product of these features.
        features = feature_cache(project).matrix(list(project.hashes(records).values()))
        unit = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float64)
        _, gram_wall, gram_cpu = timed(lambda: unit @ unit.T)

        small, small_wall, small_cpu = timed(lambda: train_project(project))
        full, full_wall, full_cpu = timed(lambda: train_project(project, reuse_choice=False))
    print(f"project:        {small.images} photos, {len(small.categories)} categories")
    print(f"machine load:   {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores)")
    print(f"reference:      Gram product {gram_wall:5.2f} s wall, {gram_cpu:5.2f} s CPU")
    how = (
        f"held-out accuracy {small.cv_accuracy:.4f}: the last {small.cv_folds}-fold CV "
        f"({small.cv_fresh_photos} photos) + {small.cv_added_since} added since, predicted by "
        "the previous model"
        if small.cv_added_since
        else f"fresh {small.cv_folds}-fold CV accuracy {small.cv_accuracy:.4f}"
        + (" (previous choice kept)" if small.reused_choice else " (full selection)")
    )
    print(
        f"+5 photos:      {small_wall:5.2f} s wall, {small_cpu:5.2f} s CPU "
        f"({small_wall / gram_wall:.1f}x the reference; target <= 3 s wall); "
        f"{small.extracted} extracted; {how} (target >= 0.935)"
    )
    print(
        f"full selection: {full_wall:5.2f} s wall, {full_cpu:5.2f} s CPU "
        f"({full_wall / gram_wall:.1f}x the reference; target <= 10 s wall), "
        f"fresh CV accuracy {full.cv_accuracy:.4f} on the same photos, SVM {full.kernel} "
        f"C={full.C:g}"
    )


if __name__ == "__main__":
    main()
