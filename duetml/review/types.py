"""What a review returns: findings, their suggested fixes, and the review itself.

Each is one msgspec Struct, used as is by the review's cache, `duetml review --json` and the
web API. msgspec rather than dataclasses: Litestar (which depends on it) encodes Structs and
writes their OpenAPI schema natively, and `msgspec.convert` checks a file's JSON against the
declared fields, Literal kinds included, in one call, where a dataclass needed a matching
TypedDict, an `as_dict` and a hand-checked `from_dict` (four copies of each payload).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, get_args

import msgspec

from duetml.errors import DuetmlError, NotFoundError

# "outlier" is the off-topic kind (off_topic.py): the id stays, its readers are many.
FindingKind = Literal[
    "mislabel", "outlier", "near_duplicate", "leak", "quality", "overlap", "mixed", "small"
]
Action = Literal["move", "remove", "merge", "keep", "add_photos", "split", "rename", "add_category"]
KINDS: tuple[FindingKind, ...] = get_args(FindingKind)
ACTIONS: tuple[Action, ...] = get_args(Action)


class Suggestion(msgspec.Struct, frozen=True):
    """A fix a finding suggests (or an agent proposes): what its button does."""

    action: Action
    photos: tuple[str, ...] = ()  # project-relative paths
    to: str | None = None  # the category they go to (move, merge)
    categories: tuple[str, ...] = ()
    label: str = ""  # the button's words


class Finding(msgspec.Struct, frozen=True):
    """One finding, as the review's cache, `duetml review --json` and GET /api/review carry it."""

    id: str
    kind: FindingKind
    photos: tuple[str, ...]
    categories: tuple[str, ...]
    score: float  # how much it matters, for ordering (0-1, 4 decimals)
    message: str
    suggestion: Suggestion | None
    details: dict[str, float | str] = msgspec.field(default_factory=dict)


class Review(msgspec.Struct, frozen=True):
    """`duetml review --json` and GET /api/review: the findings, most important first."""

    findings: tuple[Finding, ...]
    dismissed: int
    model_trained_at: float | None
    stale: bool
    unreviewed: int = 0  # photos without features (unreadable, or not extracted yet)
    counts: dict[str, int] = msgspec.field(default_factory=dict)  # findings of each kind

    def __post_init__(self) -> None:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        msgspec.structs.force_setattr(self, "counts", counts)

    def for_photo(self, rel: str) -> list[Finding]:
        return [f for f in self.findings if rel in f.photos]

    def get(self, finding_id: str) -> Finding:
        for finding in self.findings:
            if finding.id == finding_id:
                return finding
        raise NotFoundError(
            f"There is no finding {finding_id!r} (the data may have changed): "
            "run the review again to see the current ones."
        )


def suggestion_from(data: object) -> Suggestion:
    """A suggestion from JSON (an agent's stored proposal); checks the shape only."""
    try:
        return msgspec.convert(data, Suggestion)
    except msgspec.ValidationError as exc:
        raise DuetmlError(
            f"A suggestion needs an action (one of: {', '.join(ACTIONS)}), photo ids and "
            f"category names as text: {exc}."
        ) from None


def make_finding(
    kind: FindingKind,
    photos: Sequence[str],
    categories: Sequence[str],
    score: float,
    message: str,
    suggestion: Suggestion | None,
    details: dict[str, float | str] | None = None,
) -> Finding:
    """A finding whose id is stable while the same photos and categories are involved."""
    key = "\n".join([kind, *sorted(photos), "|", *sorted(categories)])
    return Finding(
        id=hashlib.sha256(key.encode("utf-8")).hexdigest()[:10],
        kind=kind,
        photos=tuple(photos),
        categories=tuple(categories),
        score=round(float(min(1.0, max(0.0, score))), 4),
        message=message,
        suggestion=suggestion,
        # numpy's float64 (what the detectors compute) is a float to json, not to msgspec.
        details={k: v if isinstance(v, str) else float(v) for k, v in (details or {}).items()},
    )


def photos_text(n: int, one: str = "photo", many: str = "photos") -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"
