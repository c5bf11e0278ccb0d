"""The data every detector shares: the photos' unit-norm features and their neighbours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from duetml.project import ImageRecord
    from duetml.review.fixes import KeptAsIs
    from duetml.review.pixels import PixelFacts

NEIGHBOURS = 10  # neighbours per photo searched in the whole project


@dataclass
class ReviewData:
    records: list[ImageRecord]
    x: np.ndarray  # unit-norm float32 features, one row per record
    hashes: dict[str, str]
    dismissed: KeptAsIs
    _neighbours: tuple[np.ndarray, np.ndarray] | None = None
    hidden_groups: set[tuple[str, ...]] = field(default_factory=set)
    pixels: PixelFacts | None = None  # hashes and quality measures (None: not read)
    norms: np.ndarray | None = None  # the features' lengths before normalising (None: unknown)
    backbone: str = ""  # what computed the features (off_topic.py reads its ImageNet head)

    def photo_dismissed(self, kind: str, rel: str, group: tuple[str, ...]) -> bool:
        """Whether the user said "this one is right" about this photo for this kind."""
        if self.hashes.get(rel, "") in self.dismissed.photos.get(kind, ()):
            self.hidden_groups.add((kind, *group))
            return True
        return False

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """(cosine similarities, indices) of every photo's nearest photos, itself excluded,
        best first. The search runs on a PCA projection to SEARCH_DIM values (ten times less
        work than on the full vectors; copies stay each other's neighbours), in chunks of
        bounded memory; the similarities of the neighbours found are then exact."""
        if self._neighbours is None:
            import numpy as np
            from sklearn import config_context
            from sklearn.neighbors import NearestNeighbors

            n = len(self.x)
            k = min(NEIGHBOURS + 1, n)
            space = projection(self.x)
            search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(space)
            with config_context(working_memory=64):  # MB per chunk: bounded at any size
                _, indices = search.kneighbors(space)
            # Drop each photo itself (exact copies may sort either way, so by index).
            rows_idx = np.full((n, k - 1), -1, dtype=np.int64)
            for i in range(n):
                others = indices[i][indices[i] != i][: k - 1]
                rows_idx[i, : len(others)] = others
            rows_sim = np.full((n, k - 1), -1.0)
            for start in range(0, n, 512):  # 512 x 10 neighbours x 1,280 floats: 26 MB
                block = slice(start, start + 512)
                found = rows_idx[block]
                exact = np.einsum("nd,nkd->nk", self.x[block], self.x[np.maximum(found, 0)])
                rows_sim[block] = np.where(found >= 0, exact, -1.0)
            order = np.argsort(-rows_sim, axis=1)
            rows_sim = np.take_along_axis(rows_sim, order, axis=1)
            rows_idx = np.take_along_axis(rows_idx, order, axis=1)
            self._neighbours = (rows_sim, rows_idx)
        return self._neighbours


SEARCH_DIM = 128


def projection(x: np.ndarray) -> np.ndarray:
    """The features projected on their SEARCH_DIM main directions (PCA fitted on an even
    sample of at most 2,000 photos), as float32; unchanged when they are already small."""
    import numpy as np

    n, dim = x.shape
    if dim <= SEARCH_DIM or n <= SEARCH_DIM:
        return x
    from sklearn.utils.extmath import randomized_svd

    sample = x[np.linspace(0, n - 1, min(n, 2000)).astype(np.int64)]
    mean = sample.mean(0)
    _, _, directions = randomized_svd(sample - mean, SEARCH_DIM, n_iter=2, random_state=0)
    basis = directions.T.astype(np.float32)
    projected = np.empty((n, SEARCH_DIM), dtype=np.float32)
    for start in range(0, n, 4096):
        block = slice(start, start + 4096)
        projected[block] = (x[block] - mean.astype(np.float32)) @ basis
    return projected
