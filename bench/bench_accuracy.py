"""5-fold cross-validated accuracy on Caltech-101 (100 classes, 5,233 photos), default backbone.

    python bench/bench_accuracy.py [DATASET_FOLDER]

Goes through the product path (`Project.init --from`, `train_project`), then fits, on the
very same features, the straightforward pipeline the issue quotes as a reference
(scikit-learn `SVC()` with its defaults on the raw features, plain 5-fold CV).
Dataset: Caltech 101, Fei-Fei, Fergus & Perona (2004); CaltechDATA doi:10.22002/D1.20086.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from duetml.project import Project
from duetml.training import project_features, train_project

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        project, report = Project.init(Path(tmp) / "caltech", from_source=source)
        imported = time.perf_counter() - start
        start = time.perf_counter()
        trained = train_project(project)
        seconds = time.perf_counter() - start
        x, usable, _, _ = project_features(project, project.images("train"))
        y = np.array([r.category for r in usable])

        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.svm import SVC

        start = time.perf_counter()
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        plain = cross_val_score(SVC(), x, y, cv=folds).mean()
        plain_seconds = time.perf_counter() - start
    print(
        f"dataset:                 {source} "
        f"({trained.images} photos, {len(trained.categories)} classes)"
    )
    print(
        f"import (init --from):    {imported:.1f} s, {len(report.added)} photos, "
        f"{len(report.rejected)} rejected"
    )
    print(
        f"duetml train:            {seconds:.1f} s "
        f"(features + model selection over {trained.cv_folds} folds)"
    )
    print(
        f"duetml 5-fold CV acc.:   {trained.cv_accuracy:.4f}  "
        f"(SVM {trained.kernel}, C={trained.C:g})"
    )
    print(f"reference SVC() 5-fold:  {plain:.4f}  ({plain_seconds:.1f} s, same features)")


if __name__ == "__main__":
    main()
