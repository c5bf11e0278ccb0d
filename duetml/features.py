"""Feature extraction with a cache keyed by image content.

A re-train after adding five photos computes five feature vectors, not five thousand: vectors
are stored per backbone under the sha256 of the photo's bytes, so renaming, moving or merging
categories never invalidates them.

Extraction streams: a small thread pool decodes photos ahead of the network (Pillow releases
the GIL while decoding), ONNX Runtime runs small batches, and only the feature vectors are
kept, so memory stays flat however many photos there are.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from duetml import atomic
from duetml.backbones import INPUT_SIZE, Backbone, open_session, session_begun
from duetml.errors import BadImageError, DuetmlError
from duetml.images import load_square

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

BATCH_SIZE = 4  # measured: small batches are fastest for these nets on a 2-core CPU
SAVE_EVERY = 500  # photos; an interrupted run keeps what it computed


@dataclass
class Progress:
    """Where a training is: `phase` is "features" (done/total photos), then the classifier's
    "kernel", "selection" (done/total fold fits), "calibration", "final fit", and "saving"."""

    done: int
    total: int
    elapsed: float
    phase: str = "features"

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


ProgressCallback = Callable[[Progress], None]


class FeatureCache:
    """sha256 -> feature vector for one backbone at one precision, in append-only segment files.

    Each save writes only the vectors added since the last one, as a new .npz segment (written
    atomically, arrays only, no pickle): adding 5 photos to a 100,000-photo cache writes ~30 KB,
    not 500 MB, and no save ever rewrites older content, so a crash cannot lose it. When
    segments pile up, the small ones are merged into one (the largest, the bulk, is left alone),
    and the merged files are removed only after the merge is on disk. A damaged segment (a
    truncated file, say) is set aside with one sentence in `notices`; its photos are simply
    extracted again.
    """

    MAX_SEGMENTS = 16

    def __init__(self, folder: Path, backbone: Backbone) -> None:
        self.folder = folder
        self.name = backbone.key  # int8 and fp32 features never share a file
        self.path = folder / f"features-{self.name}.npz"  # the first segment
        self.dim = backbone.feature_dim
        self.notices: list[str] = []
        self._vectors: dict[str, np.ndarray] = {}
        self._unsaved: list[str] = []
        self._damaged: list[Path] = []
        self._load()

    def segments(self) -> list[Path]:
        """The segment files on disk, oldest first."""
        later = sorted(self.folder.glob(f"features-{self.name}.*.npz"))
        return ([self.path] if self.path.is_file() else []) + later

    def _load(self) -> None:
        for segment in self.segments():
            try:
                with np.load(segment, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except FileNotFoundError:
                continue  # merged away by another process meanwhile: its vectors are elsewhere
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                self._set_aside(segment)
                continue
            if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(keys) != len(vectors):
                self._set_aside(segment)
                continue
            self._vectors.update(zip((str(k) for k in keys), vectors, strict=True))

    def _set_aside(self, segment: Path) -> None:
        self._damaged.append(segment)
        self.notices.append(
            f"Part of the feature cache ({segment.name}) was damaged and is set aside; "
            "the features of its photos are computed again."
        )

    def __contains__(self, digest: str) -> bool:
        return digest in self._vectors

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, digest: str) -> np.ndarray | None:
        return self._vectors.get(digest)

    def put(self, digest: str, vector: np.ndarray) -> None:
        if digest not in self._vectors:
            self._unsaved.append(digest)
        self._vectors[digest] = np.asarray(vector, dtype=np.float32)

    def matrix(self, digests: Sequence[str]) -> np.ndarray:
        if not digests:
            return np.zeros((0, self.dim), np.float32)
        matrix: np.ndarray = np.stack([self._vectors[d] for d in digests])
        return matrix

    def save(self) -> None:
        """Append what was added since the last save as a new segment."""
        for segment in self._damaged:
            # Renamed, not deleted: nothing a user put on disk is destroyed.
            with contextlib.suppress(OSError):
                os.replace(segment, segment.with_suffix(".damaged"))
        self._damaged = []
        if not self._unsaved:
            return
        try:
            self._write_segment(self._unsaved)
            self._unsaved = []
            segments = self.segments()
            if len(segments) > self.MAX_SEGMENTS:
                self._merge_small(segments)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # A read-only project: reading works, the features are computed again.

    def _write_segment(self, digests: Sequence[str]) -> Path:
        # Unique, time-ordered names: two processes saving at once never overwrite each other.
        name = f"features-{self.name}.{time.time_ns():020d}-{os.getpid()}.npz"
        keys = np.array(list(digests), dtype="U64")
        vectors = self.matrix(digests)
        path = self.folder / name
        atomic.write_with(path, lambda handle: np.savez(handle, keys=keys, vectors=vectors))
        return path

    def _merge_small(self, segments: list[Path]) -> None:
        largest = max(segments, key=lambda p: p.stat().st_size)
        small = [p for p in segments if p != largest]
        keys: dict[str, None] = {}
        for segment in small:
            try:
                with np.load(segment, allow_pickle=False) as data:
                    keys.update(dict.fromkeys(str(k) for k in data["keys"]))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                continue
        merged = [k for k in keys if k in self._vectors]
        self._write_segment(merged)  # on disk first; only then are the parts removed
        for segment in small:
            with contextlib.suppress(FileNotFoundError):
                segment.unlink()


class FeatureExtractor:
    """Runs one backbone over photos; decoding overlaps with the network."""

    def __init__(self, backbone: Backbone, decode_threads: int | None = None) -> None:
        self.backbone = backbone
        # A session begun early (a cold `duetml predict`) is taken at the first batch, so
        # the first photos decode while ONNX Runtime finishes building it.
        self._session = None if session_begun(backbone) else open_session(backbone)
        self.decode_threads = decode_threads or max(1, min(4, os.cpu_count() or 1))

    @property
    def session(self) -> InferenceSession:
        if self._session is None:
            self._session = open_session(self.backbone)
        return self._session

    def run(self, photos: np.ndarray) -> np.ndarray:
        """uint8 (n, 224, 224, 3) -> features (the session computes nothing else)."""
        features: np.ndarray = self.session.run(["features"], {"photos": photos})[0]
        return features

    def extract(
        self,
        sources: Sequence[Path | bytes],
        progress: ProgressCallback | None = None,
        also: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        """Yield (index, vector, None) or (index, None, reason) for each source, in order.
        ``also(index)`` runs in the decode threads after each photo that decoded: other work
        on the same photo (the review's pixel measures) overlaps with the network too."""
        start = time.perf_counter()
        total = len(sources)
        done = 0

        def decode(index: int) -> tuple[int, np.ndarray | None, str | None]:
            try:
                square = load_square(sources[index], INPUT_SIZE)
            except BadImageError as exc:
                return index, None, str(exc)
            except OSError as exc:
                return index, None, f"cannot be read ({exc.strerror or exc})."
            if also is not None:
                also(index)
            return index, square, None

        with ThreadPoolExecutor(self.decode_threads) as pool:
            # Bounded look-ahead: enough decoded photos to keep the network busy, never all.
            window = self.decode_threads * BATCH_SIZE * 4
            pending = [pool.submit(decode, i) for i in range(min(window, total))]
            next_index = len(pending)
            cursor = 0
            while cursor < total:
                batch_end = min(cursor + BATCH_SIZE, total)
                decoded = [pending[i - cursor].result() for i in range(cursor, batch_end)]
                pending = pending[batch_end - cursor :]
                while next_index < total and len(pending) < window:
                    pending.append(pool.submit(decode, next_index))
                    next_index += 1
                good = [(index, pixels) for index, pixels, _ in decoded if pixels is not None]
                vectors = {}
                if good:
                    features = self.run(np.stack([d[1] for d in good]))
                    vectors = {d[0]: features[k] for k, d in enumerate(good)}
                for index, _, reason in decoded:
                    yield index, vectors.get(index), reason
                done = batch_end
                cursor = batch_end
                if progress:
                    progress(Progress(done, total, time.perf_counter() - start))


_EXTRACTORS: dict[str, FeatureExtractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def extractor_for(backbone: Backbone) -> FeatureExtractor:
    """One extractor per backbone and precision per process (the web server reuses it)."""
    with _EXTRACTORS_LOCK:
        if backbone.key not in _EXTRACTORS:
            _EXTRACTORS[backbone.key] = FeatureExtractor(backbone)
        return _EXTRACTORS[backbone.key]


def fill_cache(
    cache: FeatureCache,
    items: Sequence[tuple[str, Path]],
    backbone: Backbone,
    progress: ProgressCallback | None = None,
    also: Callable[[str, Path], None] | None = None,
) -> dict[str, str]:
    """Compute the features missing from ``cache`` for (digest, path) items; ``also(digest,
    path)`` runs on each photo that decoded, beside its decoding (`FeatureExtractor.extract`).

    Returns {digest: reason} for photos that could not be decoded. The cache is saved every
    few hundred photos and at the end, also when interrupted (Ctrl-C keeps the work done).
    """
    missing = list({d: p for d, p in items if d not in cache}.items())
    failures: dict[str, str] = {}
    if not missing:
        return failures
    extractor = extractor_for(backbone)
    try:
        for count, (index, vector, reason) in enumerate(
            extractor.extract(
                [p for _, p in missing],
                progress,
                None if also is None else lambda index: also(*missing[index]),
            ),
            start=1,
        ):
            digest = missing[index][0]
            if vector is None:
                failures[digest] = reason or "cannot be decoded."
            else:
                cache.put(digest, vector)
            if count % SAVE_EVERY == 0:
                cache.save()
    finally:
        cache.save()
    return failures


def features_for_sources(
    sources: Sequence[Path | bytes], backbone: Backbone
) -> tuple[np.ndarray, list[str | None]]:
    """Features of photos outside the project (prediction); rows of failures are zero."""
    extractor = extractor_for(backbone)
    matrix = np.zeros((len(sources), backbone.feature_dim), dtype=np.float32)
    reasons: list[str | None] = [None] * len(sources)
    for index, vector, reason in extractor.extract(sources):
        if vector is None:
            reasons[index] = reason
        else:
            matrix[index] = vector
    if not sources:
        raise DuetmlError("Give at least one photo.")
    return matrix, reasons
