"""The review's cache (.duetml/cache/review.json), keyed by the photos, the model, the
dismissals and the rules, so a review made under other rules is recomputed."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from duetml import atomic
from duetml.errors import DuetmlError
from duetml.review.types import KINDS, Finding

if TYPE_CHECKING:
    from duetml.project import ImageRecord, Project

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
    dismissed: dict[str, Any],
    extract: bool,
) -> str:
    digest = hashlib.sha256()
    digest.update(f"{REVIEW_VERSION}|{thresholds()}|{trained_at}|{extract}|".encode())
    digest.update(json.dumps(dismissed["photos"], sort_keys=True).encode())
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


def read_cache(project: Project, key: str) -> tuple[list[Finding], int, int] | None:
    """The cached review for this key; None (recompute) when it is absent, made for other
    photos or rules, or not what write_cache writes (any JSON value, however nested)."""
    try:
        data = json.loads((project.state_dir / CACHE_FILE).read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    raw = data.get("findings")
    unreviewed, hidden = data.get("unreviewed"), data.get("hidden")
    if not isinstance(raw, list) or not isinstance(unreviewed, int) or not isinstance(hidden, int):
        return None
    try:
        findings = [Finding.from_dict(f) for f in raw]
    except (ValueError, KeyError, TypeError, AttributeError, DuetmlError):
        return None
    if not all(
        f.kind in KINDS
        and all(isinstance(v, str) for v in (*f.photos, *f.categories))
        and isinstance(f.details, dict)
        for f in findings
    ):
        return None
    return findings, unreviewed, hidden


def write_cache(
    project: Project, key: str, findings: list[Finding], unreviewed: int, hidden: int
) -> None:
    data = {
        "key": key,
        "findings": [f.as_dict() for f in findings],
        "unreviewed": unreviewed,
        "hidden": hidden,
    }
    try:
        atomic.write_text(project.state_dir / CACHE_FILE, json.dumps(data))
    except OSError:
        pass  # only a cache
