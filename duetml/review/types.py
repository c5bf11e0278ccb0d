"""What a review returns: findings, their suggested fixes, and the review itself."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict, cast

from duetml.errors import DuetmlError, NotFoundError

# "outlier" is the off-topic kind (off_topic.py): the id stays, its readers are many.
FindingKind = Literal[
    "mislabel", "outlier", "near_duplicate", "leak", "quality", "overlap", "mixed", "small"
]
Action = Literal["move", "remove", "merge", "keep", "add_photos", "split", "rename", "add_category"]
KINDS: tuple[str, ...] = (
    "mislabel",
    "outlier",
    "near_duplicate",
    "leak",
    "quality",
    "overlap",
    "mixed",
    "small",
)
ACTIONS: tuple[str, ...] = (
    "move",
    "remove",
    "merge",
    "keep",
    "add_photos",
    "split",
    "rename",
    "add_category",
)


class SuggestionDict(TypedDict):
    action: Action
    photos: list[str]  # project-relative paths
    to: str | None  # the category they go to (move, merge)
    categories: list[str]
    label: str  # the button's words


class FindingDict(TypedDict):
    id: str
    kind: FindingKind
    photos: list[str]
    categories: list[str]
    score: float  # how much it matters, for ordering
    message: str
    suggestion: SuggestionDict | None
    details: dict[str, float | str]


class ReviewDict(TypedDict):
    """`duetml review --json` and GET /api/review."""

    findings: list[FindingDict]
    counts: dict[str, int]  # findings of each kind
    dismissed: int
    model_trained_at: float | None
    stale: bool
    unreviewed: int


@dataclass(frozen=True)
class Suggestion:
    action: Action
    photos: tuple[str, ...] = ()
    to: str | None = None
    categories: tuple[str, ...] = ()
    label: str = ""

    def as_dict(self) -> SuggestionDict:
        return {
            "action": self.action,
            "photos": list(self.photos),
            "to": self.to,
            "categories": list(self.categories),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: object) -> Suggestion:
        """A suggestion from JSON (an agent's proposal, a web request); checks the shape only."""
        if not isinstance(data, dict) or data.get("action") not in ACTIONS:
            raise DuetmlError(f"A suggestion needs an action, one of: {', '.join(ACTIONS)}.")
        photos = data.get("photos") or []
        categories = data.get("categories") or []
        to = data.get("to")
        if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
            raise DuetmlError("A suggestion's photos must be a list of photo ids.")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise DuetmlError("A suggestion's categories must be a list of category names.")
        if to is not None and not isinstance(to, str):
            raise DuetmlError("A suggestion's target must be a category name.")
        return cls(
            action=cast(Action, data["action"]),
            photos=tuple(photos),
            to=to,
            categories=tuple(categories),
            label=str(data.get("label") or ""),
        )


@dataclass(frozen=True)
class Finding:
    id: str
    kind: FindingKind
    photos: tuple[str, ...]
    categories: tuple[str, ...]
    score: float
    message: str
    suggestion: Suggestion | None
    details: dict[str, float | str] = field(default_factory=dict)

    def as_dict(self) -> FindingDict:
        return {
            "id": self.id,
            "kind": self.kind,
            "photos": list(self.photos),
            "categories": list(self.categories),
            "score": round(self.score, 4),
            "message": self.message,
            "suggestion": self.suggestion.as_dict() if self.suggestion else None,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: FindingDict) -> Finding:
        """A finding as `as_dict` wrote it (the review's cache)."""
        return cls(
            id=str(data["id"]),
            kind=data["kind"],
            photos=tuple(data["photos"]),
            categories=tuple(data["categories"]),
            score=float(data["score"]),
            message=str(data["message"]),
            suggestion=Suggestion.from_dict(data["suggestion"]) if data["suggestion"] else None,
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Review:
    findings: tuple[Finding, ...]
    dismissed: int
    model_trained_at: float | None
    stale: bool
    unreviewed: int = 0  # photos without features (unreadable, or not extracted yet)

    def as_dict(self) -> ReviewDict:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return {
            "findings": [f.as_dict() for f in self.findings],
            "counts": counts,
            "dismissed": self.dismissed,
            "model_trained_at": self.model_trained_at,
            "stale": self.stale,
            "unreviewed": self.unreviewed,
        }

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
        score=float(min(1.0, max(0.0, score))),
        message=message,
        suggestion=suggestion,
        details=details or {},
    )


def photos_text(n: int, one: str = "photo", many: str = "photos") -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"
