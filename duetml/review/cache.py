"""The review's cache (.duetml/cache/review.json), keyed by the photos, the model, the
dismissals and the rules, so a review made under other rules is recomputed."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import msgspec

from duetml import atomic
from duetml.review.types import Finding

if TYPE_CHECKING:
    from duetml.project import ImageRecord, Project
    from duetml.review.fixes import KeptAsIs

# Bump when the rules change: cached reviews are then recomputed. 2: copies verified on the
# pixels, off-topic by a calibrated margin, quality, one finding per mislabelled photo.
REVIEW_VERSION = 4
CACHE_FILE = "cache/review.json"


def train_fingerprint(records: list[ImageRecord], hashes: dict[str, str]) -> str:
    from duetml.project import fingerprint_of

    return fingerprint_of([r for r in records if r.split == "train"], hashes)


def cache_key(
    records: list[ImageRecord],
    hashes: dict[str, str],
    trained_at: float | None,
    dismissed: KeptAsIs,
    extract: bool,
) -> str:
    digest = hashlib.sha256()
    digest.update(f"{REVIEW_VERSION}|{thresholds()}|{trained_at}|{extract}|".encode())
    digest.update(json.dumps(dismissed.photos, sort_keys=True).encode())
    for record in sorted(records, key=lambda r: r.rel):
        digest.update(f"{record.rel}\t{hashes[record.rel]}\n".encode())
    return digest.hexdigest()[:32]


def thresholds() -> str:
    """The tuning constants of every detector (their UPPER_CASE module names), so a cached
    review made with other thresholds is not reused."""
    from duetml.review import (
        categories,
        data,
        duplicates,
        mislabels,
        off_topic,
        pixels,
        quality,
    )

    constants = {
        f"{module.__name__}.{name}": value
        for module in (categories, data, duplicates, mislabels, off_topic, pixels, quality)
        for name, value in sorted(vars(module).items())
        if name.isupper() and isinstance(value, int | float | str | tuple)
    }
    return json.dumps(constants, sort_keys=True)


class CachedReview(msgspec.Struct):
    """.duetml/cache/review.json: the findings before the user's dismissals are applied."""

    key: str
    findings: list[Finding]
    unreviewed: int
    hidden: int


def read_cache(project: Project, key: str) -> tuple[list[Finding], int, int] | None:
    """The cached review for this key; None (recompute) when it is absent, made for other
    photos or rules, or not what write_cache writes (any JSON value, however nested)."""
    try:
        raw = (project.state_dir / CACHE_FILE).read_bytes()
        cached = msgspec.json.decode(raw, type=CachedReview)
    except (OSError, msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    if cached.key != key:
        return None
    return cached.findings, cached.unreviewed, cached.hidden


def write_cache(
    project: Project, key: str, findings: list[Finding], unreviewed: int, hidden: int
) -> None:
    cached = CachedReview(key=key, findings=findings, unreviewed=unreviewed, hidden=hidden)
    try:
        atomic.write_bytes(project.state_dir / CACHE_FILE, msgspec.json.encode(cached))
    except OSError:
        pass  # only a cache
