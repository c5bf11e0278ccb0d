"""The map of all photos: which 2-D projection, how long, how well it keeps categories apart.

    duetml init /tmp/caltech --from ../shared/data/caltech101-subset
    duetml train -p /tmp/caltech
    python bench/bench_map.py /tmp/caltech

Projects the project's cached features (train and test) with PCA alone (the reference, in
the same run), PCA+UMAP (what duetml uses), PCA+t-SNE from scikit-learn, and PCA+openTSNE
when it is installed. For each: the seconds, and how well the 2-D map keeps categories apart
(the share of photos whose 10 nearest map neighbours are mostly of their own category; the
same measured on the full features is the ceiling). UMAP's first use in a process also pays
for numba compiling it: measured in a fresh process, as `duetml serve` does once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from duetml.datamap import map_inputs, project_to_2d
from duetml.project import Project
from duetml.training import feature_cache


def neighbour_agreement(points: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=k + 1).fit(points)
    _, neighbours = index.kneighbors(points)
    same = labels[neighbours[:, 1:]] == labels[:, None]
    return float((same.mean(axis=1) > 0.5).mean())


def timed(label: str, run) -> tuple[str, float, np.ndarray]:
    start = time.perf_counter()
    coords = run()
    return label, time.perf_counter() - start, coords


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    project = Project.open(Path(sys.argv[1]))
    inputs = map_inputs(project)
    cache = feature_cache(project)
    records = [r for r in inputs.records if inputs.hashes[r.rel] in cache]
    features = cache.matrix([inputs.hashes[r.rel] for r in records])
    labels = np.array([r.category for r in records])
    print(f"{len(features)} photos, {len(set(labels))} categories, {features.shape[1]} features")
    if len(records) < len(inputs.records):
        print(f"({len(inputs.records) - len(records)} photos without cached features left out)")

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    reduced = PCA(n_components=50, random_state=0).fit_transform(features)
    results = [timed("PCA alone (reference)", lambda: PCA(n_components=2).fit_transform(features))]
    # UMAP in a fresh process: import and numba's compiling included, as a server's first map.
    script = (
        "import sys,time,numpy as np; t=time.perf_counter();"
        "from duetml.datamap import project_to_2d;"
        f"x=np.load({str(_dump(features))!r});"
        "project_to_2d(x); print(time.perf_counter()-t)"
    )
    first = float(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    )
    results.append(timed("PCA+UMAP (duetml)", lambda: project_to_2d(features)[0]))
    results.append(
        timed(
            "PCA+t-SNE (scikit-learn)",
            lambda: TSNE(n_components=2, init="pca", random_state=0).fit_transform(reduced),
        )
    )
    try:
        from openTSNE import TSNE as OpenTSNE

        results.append(
            timed(
                "PCA+t-SNE (openTSNE)",
                lambda: np.asarray(OpenTSNE(n_jobs=2, random_state=0).fit(reduced)),
            )
        )
    except ImportError:
        print("(openTSNE is not installed: `pip install openTSNE` to compare it too)")
    ceiling = neighbour_agreement(features, labels)
    reference = results[0][1]
    print(f"{'method':28} {'seconds':>8} {'x PCA':>8} {'categories kept apart':>22}")
    for label, seconds, coords in results:
        agreement = neighbour_agreement(np.asarray(coords), labels)
        print(f"{label:28} {seconds:8.2f} {seconds / reference:8.0f} {agreement:22.3f}")
    print(f"{'full features (ceiling)':28} {'':8} {'':8} {ceiling:22.3f}")
    print(f"UMAP's first map in a fresh process (import + compile + fit): {first:.2f} s")


def _dump(features: np.ndarray) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "features.npy"
    np.save(path, features)
    return path


if __name__ == "__main__":
    main()
