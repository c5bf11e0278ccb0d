"""The review's cache (.duetml/cache/review.json), keyed by the photos, the model, the
dismissals and the rules, so a review made under other rules is recomputed."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from duetml import atomic
from duetml.errors import DuetmlError
from duetml.review.categories import (
    IMBALANCE_RATIO,
    MIXED_CONNECTIVITY,
    MIXED_MAX_PHOTOS,
    MIXED_MIN_PHOTOS,
    MIXED_MIN_SHARE,
    OVERLAP_MIN_COUNT,
    OVERLAP_MIN_SHARE,
    TINY_CATEGORY,
)
from duetml.review.data import MAX_GROUP, NEIGHBOURS, SEARCH_DIM
from duetml.review.duplicates import DUPLICATE_CANDIDATE, DUPLICATE_SIMILARITY, THUMBNAIL_MATCH
from duetml.review.mislabels import (
    MISLABEL_CLEAR,
    MISLABEL_MAX_GIVEN,
    MISLABEL_MIN_CONFIDENCE,
    MISLABEL_OVER_OFF_DOMAIN,
)
from duetml.review.off_topic import (
    OFF_DOMAIN_MAX_SHARE,
    OFF_DOMAIN_MIN_CAP,
    OFF_DOMAIN_Z,
    OFF_DOMAIN_Z_CATEGORY,
    OUTLIER_NEIGHBOURS,
    OUTLIER_Z,
)
from duetml.review.types import Finding

if TYPE_CHECKING:
    from duetml.project import ImageRecord, Project

REVIEW_VERSION = 1  # bump when the rules change: cached reviews are then recomputed
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
    """The tuning constants, so a cached review made with other thresholds is not reused."""
    return json.dumps(
        [
            MISLABEL_MIN_CONFIDENCE,
            MISLABEL_CLEAR,
            MISLABEL_OVER_OFF_DOMAIN,
            MISLABEL_MAX_GIVEN,
            DUPLICATE_SIMILARITY,
            DUPLICATE_CANDIDATE,
            THUMBNAIL_MATCH,
            NEIGHBOURS,
            SEARCH_DIM,
            OUTLIER_NEIGHBOURS,
            OFF_DOMAIN_Z,
            OFF_DOMAIN_Z_CATEGORY,
            OFF_DOMAIN_MAX_SHARE,
            OFF_DOMAIN_MIN_CAP,
            OUTLIER_Z,
            MIXED_CONNECTIVITY,
            MIXED_MAX_PHOTOS,
            MIXED_MIN_PHOTOS,
            MIXED_MIN_SHARE,
            OVERLAP_MIN_SHARE,
            OVERLAP_MIN_COUNT,
            TINY_CATEGORY,
            IMBALANCE_RATIO,
            MAX_GROUP,
        ]
    )


def read_cache(project: Project, key: str) -> tuple[list[Finding], int, int] | None:
    try:
        data = json.loads((project.state_dir / CACHE_FILE).read_text("utf-8"))
        if data.get("key") != key:
            return None
        findings = [Finding.from_dict(f) for f in data["findings"]]
        return findings, int(data["unreviewed"]), int(data["hidden"])
    except (OSError, ValueError, KeyError, TypeError, DuetmlError):
        return None


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
