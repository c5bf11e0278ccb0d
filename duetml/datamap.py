"""The map of all photos: every photo's cached feature vector placed on a 2-D plane.

Photos the backbone sees as alike land close together, so a person can see at a glance a
category split in two, two categories mixed into one cloud, or a lone photo far from its own
kind, and pick photos straight from the picture (the 2-D views the paper's related work cites).

The layout is PCA to 50 dimensions, then UMAP (umap-learn). Measured on the 5,233 Caltech
photos on 2 cores at load 10 (bench/bench_map.py, two runs): UMAP multi-threaded 51 s, openTSNE
158 s, scikit-learn's t-SNE 314 s, all keeping categories equally apart; PCA alone (2.6 s)
piles the 100 categories on top of each other. UMAP's first use in a process also pays for
numba compiling it. A new layout starts from the previous one, so adding a few photos does
not rearrange the whole map.

Features come from the training's cache; the few it lacks (test photos, photos added since)
are extracted while the layout is computed, in the background for the page. Until then,
photos added since the layout sit among their most alike photos (when their features are
cached) or wait off the map (when not). The layout is cached in .duetml/cache per backbone,
keyed by the contents of the photos (not their names or categories): moving photos between
categories only changes their colour, never their place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duetml import atomic
from duetml.errors import NotEnoughDataError
from duetml.features import ProgressCallback
from duetml.project import ImageRecord, Project

log = logging.getLogger("duetml.datamap")

LAYOUT_FORMAT = 1  # bump when the projection changes, so older cached layouts are redone
PCA_DIMENSIONS = 50
NEIGHBOURS = 15  # UMAP's n_neighbors: local enough to keep small categories apart
MIN_DIST = 0.15
EPOCHS = 200  # UMAP's own choice above 10,000 photos; below it picks 500 for no visible gain
SMALL = 30  # below this many photos UMAP has too little to work with: PCA alone
PLACE_NEIGHBOURS = 5  # photos added since the layout sit among their 5 most alike photos
PLACE_CHUNK = 256  # rows per similarity block: memory stays bounded at any project size


@dataclass(frozen=True)
class MapLayout:
    """2-D coordinates (scaled to [0, 1]) of feature vectors, by the content hash of the photo."""

    key: str  # backbone, format and the sorted content hashes it was computed from
    digests: tuple[str, ...]
    coords: np.ndarray  # (n, 2) float32
    method: str
    seconds: float
    computed_at: float
    skipped: tuple[str, ...] = ()  # content hashes that could not be decoded: not retried

    def position(self) -> dict[str, int]:
        return {digest: index for index, digest in enumerate(self.digests)}


def layout_key(backbone: str, digests: Iterable[str]) -> str:
    text = "\n".join([f"{backbone}:{LAYOUT_FORMAT}", *sorted(set(digests))])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def layout_path(project: Project) -> Path:
    return project.state_dir / "cache" / f"map-{project.feature_backbone.key}.npz"


def load_layout(project: Project) -> MapLayout | None:
    """The cached layout of this backbone, whatever photos it covers; None if there is none."""
    try:
        with np.load(layout_path(project), allow_pickle=False) as data:
            meta = data["meta"]
            layout = MapLayout(
                key=str(meta[0]),
                digests=tuple(str(d) for d in data["digests"]),
                coords=np.asarray(data["coords"], dtype=np.float32),
                method=str(meta[1]),
                seconds=float(meta[2]),
                computed_at=float(meta[3]),
                skipped=tuple(str(d) for d in data["skipped"]),
            )
    except (OSError, ValueError, KeyError, IndexError):
        return None  # none yet, or damaged: it is only a cache, it is computed again
    if layout.coords.shape != (len(layout.digests), 2):
        return None
    return layout


def save_layout(project: Project, layout: MapLayout) -> None:
    meta = np.array(
        [layout.key, layout.method, str(layout.seconds), str(layout.computed_at)], dtype="U64"
    )
    digests = np.array(layout.digests, dtype="U64")
    skipped = np.array(layout.skipped, dtype="U64")
    atomic.write_with(
        layout_path(project),
        lambda handle: np.savez(
            handle, meta=meta, digests=digests, coords=layout.coords, skipped=skipped
        ),
    )


def project_to_2d(features: np.ndarray, start: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates in [0, 1] and the method's name.

    ``start`` (n, 2) is where to begin (the previous layout), so the map stays recognisable.
    """
    from sklearn.decomposition import PCA

    n = len(features)
    if n == 0:
        return np.zeros((0, 2), np.float32), "none"
    if n < 3:
        return _scaled(np.zeros((n, 2)) + np.arange(n)[:, None]), "PCA"
    x = np.asarray(features, dtype=np.float32)
    dimensions = min(PCA_DIMENSIONS, n - 1, x.shape[1])
    reduced = PCA(n_components=dimensions, random_state=0).fit_transform(x)
    if n < SMALL:
        return _scaled(reduced[:, :2]), "PCA"
    # numba colours its (internal, caught) type-inference errors with colorama, whose
    # init()/deinit() swap sys.stdout and sys.stderr from whichever thread compiles: a map
    # computed in the server's background thread then put back streams the main thread had
    # replaced since (a CLI run in the same process had its output closed under it). Plain
    # messages need no swap; the variable is read when numba is first imported.
    os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")
    import umap  # numba compiles on first use: imported only when a map is computed

    init: np.ndarray | str = "pca"
    if start is not None and start.shape == (n, 2) and np.isfinite(start).all():
        # UMAP rescales the start itself; a little jitter keeps identical photos apart.
        jitter = np.random.default_rng(0).normal(0, 1e-4, start.shape)
        init = (start + jitter).astype(np.float32)
    # No random_state: with one, UMAP runs single-threaded and took 7x longer here (bench).
    # The map still stays put: a layout is cached, and a new one starts from the old.
    reducer = umap.UMAP(
        n_neighbors=min(NEIGHBOURS, n - 1), min_dist=MIN_DIST, init=init, n_epochs=EPOCHS
    )
    return _scaled(reducer.fit_transform(reduced)), "UMAP"


def _scaled(coords: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    scaled: np.ndarray = ((coords - low) / span).astype(np.float32)
    return scaled


def place_among(
    new: np.ndarray, known: np.ndarray, known_coords: np.ndarray, k: int = PLACE_NEIGHBOURS
) -> np.ndarray:
    """Coordinates for ``new`` vectors: the similarity-weighted mean of their k most alike
    ``known`` vectors' coordinates (features are L2-normalised: a dot product is a cosine)."""
    if len(new) == 0 or len(known) == 0:
        return np.full((len(new), 2), 0.5, np.float32)
    k = min(k, len(known))
    placed = np.empty((len(new), 2), np.float32)
    for start in range(0, len(new), PLACE_CHUNK):
        block = new[start : start + PLACE_CHUNK] @ known.T
        nearest = np.argpartition(-block, k - 1, axis=1)[:, :k]
        weights = np.clip(np.take_along_axis(block, nearest, axis=1), 1e-3, None)
        weights /= weights.sum(axis=1, keepdims=True)
        placed[start : start + PLACE_CHUNK] = np.einsum(
            "ij,ijk->ik", weights, known_coords[nearest]
        )
    return placed


@dataclass
class MapInputs:
    records: list[ImageRecord]  # every photo, train and test
    hashes: dict[str, str]  # rel -> content hash
    key: str

    def digests(self) -> set[str]:
        return set(self.hashes.values())


def map_inputs(project: Project) -> MapInputs:
    """Every photo (train and test) and its content hash (from the project's hash index)."""
    records = project.images("train") + project.images("test")
    try:
        hashes = project.hashes(records)
    except OSError:  # a photo moved while we looked: hash them one by one
        hashes = {}
        for record in records:
            try:
                hashes.update(project.hashes([record]))
            except OSError:
                continue
    records = [r for r in records if r.rel in hashes]
    return MapInputs(records, hashes, layout_key(project.feature_backbone.key, hashes.values()))


def needs_layout(layout: MapLayout | None, inputs: MapInputs) -> bool:
    """True when photos were added since the layout (removed ones simply leave the map)."""
    if layout is None:
        return bool(inputs.hashes)
    known = set(layout.digests) | set(layout.skipped)
    return any(digest not in known for digest in inputs.hashes.values())


def compute_layout(project: Project, progress: ProgressCallback | None = None) -> MapLayout:
    """Compute the layout of every photo, save and return it.

    Features come from the cache; those missing (test photos, photos added since training)
    are extracted first, as training would.
    """
    from duetml.training import feature_cache, project_features

    inputs = map_inputs(project)
    cache = feature_cache(project)
    _, usable, skipped, hashes = project_features(project, inputs.records, progress, cache)
    digests = tuple(sorted({hashes[r.rel] for r in usable}))
    if not digests:
        raise NotEnoughDataError("The project has no photos to put on the map yet: add some first.")
    features = cache.matrix(digests)
    started = time.perf_counter()
    start = _start_from(load_layout(project), digests, features)
    coords, method = project_to_2d(features, start)
    layout = MapLayout(
        key=inputs.key,
        digests=digests,
        coords=coords,
        method=method,
        seconds=round(time.perf_counter() - started, 2),
        computed_at=time.time(),
        skipped=tuple(sorted({hashes[rel] for rel, _ in skipped})),
    )
    save_layout(project, layout)
    log.info("map of %d photos computed with %s in %.1f s", len(digests), method, layout.seconds)
    return layout


def _start_from(
    previous: MapLayout | None, digests: Sequence[str], features: np.ndarray
) -> np.ndarray | None:
    """The previous layout, extended to these photos, as UMAP's start; None without one."""
    if previous is None or not previous.digests:
        return None
    positions = previous.position()
    known = [i for i, d in enumerate(digests) if d in positions]
    if len(known) < len(digests) // 2:
        return None  # mostly new photos: a fresh layout is better than a patched one
    start = np.empty((len(digests), 2), np.float32)
    start[known] = previous.coords[[positions[digests[i]] for i in known]]
    new = [i for i, d in enumerate(digests) if d not in positions]
    if new:
        start[new] = place_among(features[new], features[known], start[known])
    return start


def photo_map(
    project: Project,
    compute: bool = True,
    flags: dict[str, int] | None = None,
    inputs: MapInputs | None = None,
) -> dict[str, Any]:
    """Every photo's place on the map, in columns (one entry per photo in each list).

    ``{"state", "method", "categories", "ids", "x", "y", "category" (index into
    categories), "test" (1 for a test photo), "flag" (``flags[rel]``, -1 if none), "placed",
    "missing", "needs_layout", "layout_key"}``. ``state`` is "ready", "outdated" (photos were
    added since the layout: those with features are placed among their most alike photos,
    the others are left out and counted in ``missing``, until it is computed again) or
    "none" (no layout yet). With ``compute`` the layout is brought up to date first (seconds
    at thousands of photos); without it, this only reads. ``inputs`` are the photos and
    their hashes, when the caller has listed them already.
    """
    inputs = inputs or map_inputs(project)
    layout = load_layout(project)
    if compute and needs_layout(layout, inputs):
        layout = compute_layout(project)
        inputs = map_inputs(project)
    categories = sorted(
        {r.category for r in inputs.records} | set(project.category_names("train")),
        key=str.lower,
    )
    result: dict[str, Any] = {
        "state": "none",
        "method": None,
        "computed_at": None,
        "categories": categories,
        "ids": [],
        "x": [],
        "y": [],
        "category": [],
        "test": [],
        "flag": [],
        "placed": 0,  # placed among their neighbours, not yet by the layout itself
        "missing": len(inputs.records),  # not on the map (no features yet, or unreadable)
        "needs_layout": needs_layout(layout, inputs),
        "layout_key": inputs.key,
    }
    if layout is None or not inputs.records:
        return result
    positions = layout.position()
    laid = [r for r in inputs.records if inputs.hashes[r.rel] in positions]
    coords = [layout.coords[positions[inputs.hashes[r.rel]]] for r in laid]
    new = [r for r in inputs.records if inputs.hashes[r.rel] not in positions]
    placed: list[ImageRecord] = []
    if new and laid:
        placed, placed_coords = _place_added(project, inputs.hashes, laid, coords, new)
        coords += placed_coords
    shown = laid + placed
    xy = np.array(coords, np.float32).reshape(-1, 2)
    index = {name: i for i, name in enumerate(categories)}
    flags = flags or {}
    result.update(
        state="outdated" if result["needs_layout"] else "ready",
        method=layout.method,
        computed_at=layout.computed_at,
        ids=[r.rel for r in shown],
        x=[round(float(v), 5) for v in xy[:, 0]],
        y=[round(float(v), 5) for v in xy[:, 1]],
        category=[index[r.category] for r in shown],
        test=[int(r.split == "test") for r in shown],
        flag=[flags.get(r.rel, -1) for r in shown],
        placed=len(placed),
        missing=len(inputs.records) - len(shown),
    )
    return result


def _place_added(
    project: Project,
    hashes: dict[str, str],
    laid: list[ImageRecord],
    coords: list[np.ndarray],
    new: list[ImageRecord],
) -> tuple[list[ImageRecord], list[np.ndarray]]:
    """The photos added since the layout that have features, and their places among their
    most alike photos on it (`laid`, at `coords`)."""
    from duetml.training import feature_cache

    cache = feature_cache(project)  # read only when photos were added since the layout
    placed = [r for r in new if hashes[r.rel] in cache]
    if not placed:
        return [], []
    known = cache.matrix([hashes[r.rel] for r in laid if hashes[r.rel] in cache])
    known_coords = np.array(
        [c for r, c in zip(laid, coords, strict=True) if hashes[r.rel] in cache],
        np.float32,
    )
    fresh = cache.matrix([hashes[r.rel] for r in placed])
    return placed, list(place_among(fresh, known, known_coords))
