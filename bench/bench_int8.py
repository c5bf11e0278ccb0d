"""Is int8 extraction as accurate as fp32? 5-fold SVM accuracy on the same photos and folds.

    python bench/bench_int8.py [DATASET_FOLDER] [--project DIR]

For the demo photos that ship with duetml (duetml/demo_data) and for a dataset (default: the
Caltech-101 subset, 5,233 photos in 100 categories), features are extracted at both
precisions through duetml's own path (a project and its feature caches, so a second run with
`--project` extracts nothing), then the same SVMs are cross-validated on both with the same
5 folds: linear and RBF on L2-normalised features, as duetml's classifier fits them
(scikit-learn SVC on the precomputed kernel). Prints each accuracy beside its fp32
reference, the difference in points (target: within 0.3), and how often the two precisions'
out-of-fold predictions agree. Dataset: Caltech 101, Fei-Fei, Fergus & Perona (2004).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from duetml.classifier import kernel, normalise
from duetml.demo import DEMO_DATA
from duetml.project import Project
from duetml.training import project_features

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "caltech101-subset"


def features(project: Project, precision: str) -> tuple[np.ndarray, list[str], float]:
    project.set_precision(precision)
    start = time.perf_counter()
    x, usable, _, _ = project_features(project, project.images("train"))
    return x, [r.category for r in usable], time.perf_counter() - start


def cross_validate(x: np.ndarray, y: list[str], kind: str, c: float) -> np.ndarray:
    """Out-of-fold predictions of an SVM on the precomputed kernel, 5 stratified folds."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import SVC

    unit = normalise(x)
    gram = kernel(kind, unit @ unit.T)
    labels = np.array(y)
    predicted = np.empty(len(labels), dtype=labels.dtype)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for train, test in folds.split(unit, labels):
        svm = SVC(kernel="precomputed", C=c).fit(gram[np.ix_(train, train)], labels[train])
        predicted[test] = svm.predict(gram[np.ix_(test, train)])
    return predicted


def compare(name: str, project: Project, candidates: list[tuple[str, float]]) -> None:
    x32, y32, t32 = features(project, "fp32")
    x8, y8, t8 = features(project, "int8")
    assert y32 == y8, "both precisions must see the same photos"
    print(f"\n{name}: {len(y32)} photos, {len(set(y32))} categories")
    print(f"  feature extraction (0 s when cached): fp32 {t32:.1f} s, int8 {t8:.1f} s")
    unit32, unit8 = normalise(x32), normalise(x8)
    cosine = (unit32 * unit8).sum(axis=1)
    print(f"  cosine of int8 to fp32 features: mean {cosine.mean():.4f}, min {cosine.min():.4f}")
    truth = np.array(y32)
    for kind, c in candidates:
        fp32 = cross_validate(x32, y32, kind, c)
        int8 = cross_validate(x8, y8, kind, c)
        acc32, acc8 = (fp32 == truth).mean(), (int8 == truth).mean()
        print(
            f"  {kind:<6} C={c:<4g} 5-fold accuracy: int8 {acc8:.4f} vs fp32 {acc32:.4f} "
            f"({100 * (acc8 - acc32):+.2f} points; target within 0.3); "
            f"predictions agree {(fp32 == int8).mean():.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--project", type=Path, help="reuse (or make) the dataset's project here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo, _ = Project.init(Path(tmp) / "demo", from_source=DEMO_DATA)
        compare(
            "demo photos",
            demo,
            [("linear", 0.1), ("linear", 1.0), ("linear", 10.0), ("rbf", 1.0), ("rbf", 10.0)],
        )
        if not args.dataset.is_dir():
            print(f"\n{args.dataset} is absent: only the demo photos were compared.")
            return
        folder = args.project or Path(tmp) / "dataset"
        if (folder / "duetml.toml").is_file():
            project = Project.open(folder)
        else:
            project, _ = Project.init(folder, from_source=args.dataset)
        # duetml's choice on Caltech: RBF C=10 (and linear C=1 the best linear one).
        compare(args.dataset.name, project, [("linear", 1.0), ("rbf", 10.0)])


if __name__ == "__main__":
    main()
