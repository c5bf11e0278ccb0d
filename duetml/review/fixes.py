"""Acting on findings: every fix goes through the Project operations, so it is one
undoable, logged operation; dismissals are remembered in .duetml/."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duetml import atomic, locks
from duetml.errors import DuetmlError, NotFoundError
from duetml.names import validate_category_name
from duetml.review.types import ACTIONS, Suggestion, photos_text

if TYPE_CHECKING:
    from duetml.project import Project

DISMISSED_FILE = "review-dismissed.json"


def apply_finding(project: Project, finding_id: str, extract: bool = True) -> str:
    """Apply a finding's suggestion as one undoable operation; "keep" dismisses it."""
    from duetml.review import review_project

    finding = review_project(project, extract=extract).get(finding_id)
    if finding.suggestion is None or finding.suggestion.action == "keep":
        dismiss_findings(project, [finding_id], extract=extract)
        return "Kept as it is; this finding will not be raised again."
    return apply_suggestion(project, finding.suggestion, "review", finding_id=finding_id)


def apply_suggestion(
    project: Project, suggestion: Suggestion, source: str, finding_id: str | None = None
) -> str:
    """Validate a suggestion against the project and apply it as ONE undoable operation,
    logged with ``source`` ("review" or "proposal"). Returns a sentence for the user."""
    action = suggestion.action
    photos = list(dict.fromkeys(suggestion.photos))
    for rel in photos:
        project.image(rel)  # raises one sentence for a stale or foreign photo id
    known = set(project.category_names("train"))
    for name in suggestion.categories:
        if validate_category_name(name) not in known:
            raise NotFoundError(f"There is no category {name!r} any more: review the data again.")
    if action in ("move", "split"):
        if not photos:
            raise DuetmlError("Name the photos to move.")
        to = suggestion.to or (f"{suggestion.categories[0]}-2" if suggestion.categories else None)
        if not to:
            raise DuetmlError("Name the category to move the photos to.")
        moved = project.move_images(photos, validate_category_name(to))
        result = f"Moved {photos_text(len(moved))} to {to!r}."
    elif action == "remove":
        if not photos:
            raise DuetmlError("Name the photos to remove.")
        count = project.remove_images(photos)
        result = f"Removed {photos_text(count)} (they are in the trash; undo brings them back)."
    elif action == "merge":
        if not suggestion.to or not suggestion.categories:
            raise DuetmlError("A merge needs the categories to merge and the one they become.")
        count = project.merge_categories(suggestion.categories, suggestion.to)
        result = (
            f"Merged {', '.join(repr(c) for c in suggestion.categories)} into "
            f"{suggestion.to!r} ({photos_text(count)} moved)."
        )
    elif action == "rename":
        if not suggestion.to or len(suggestion.categories) != 1:
            raise DuetmlError("A rename needs one category and its new name.")
        new = project.rename_category(suggestion.categories[0], suggestion.to)
        result = f"Renamed {suggestion.categories[0]!r} to {new!r}."
    elif action == "add_category":
        if not suggestion.to:
            raise DuetmlError("Name the category to add.")
        result = f"Added category {project.add_category(suggestion.to)!r}."
    elif action == "add_photos":
        names = ", ".join(repr(c) for c in suggestion.categories) or "the category"
        raise DuetmlError(
            f"Adding photos needs you: add more photos to {names} "
            "(drag them onto the page or use `duetml add`).",
            web=f"Adding photos needs you: drop more photos on {names}, or use its "
            "Add photos… button.",
        )
    elif action == "keep":
        result = "Kept as it is."
    else:
        raise DuetmlError(f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
    project.log.record(
        "apply_suggestion",
        origin=source,
        action=action,
        label=suggestion.label,
        finding=finding_id,
        photos=photos[:50],
        categories=list(suggestion.categories),
        to=suggestion.to,
    )
    return result


PHOTO_KINDS = ("mislabel", "outlier")  # dismissed per photo: "this one is right"


def dismiss_findings(project: Project, ids: Sequence[str], extract: bool = True) -> int:
    """Hide findings for good (remembered in .duetml/); returns how many were newly hidden."""
    from duetml.review import review_project

    review = review_project(project, extract=extract)
    hashes = project.hashes(project.images("train") + project.images("test"))
    busy = "Another duetml is dismissing findings of this project: try again in a moment."
    with locks.hold(project.state_dir / "review.lock", 15.0, busy):
        state = read_dismissed(project)
        count = 0
        for finding_id in dict.fromkeys(ids):
            if finding_id in state["ids"]:
                continue
            finding = review.get(finding_id)
            state["ids"].append(finding_id)
            if finding.kind in PHOTO_KINDS:
                keys = state["photos"].setdefault(finding.kind, [])
                keys += [hashes[p] for p in finding.photos if p in hashes]
            count += 1
        atomic.write_text(_dismissed_path(project), json.dumps(state, indent=1))
    project.log.record("dismiss_findings", findings=list(ids))
    return count


def _dismissed_path(project: Project) -> Path:
    return project.state_dir / DISMISSED_FILE


def read_dismissed(project: Project) -> dict[str, Any]:
    try:
        state = json.loads(_dismissed_path(project).read_text("utf-8"))
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    ids = state.get("ids")
    photos = state.get("photos")
    return {
        "ids": [str(i) for i in ids] if isinstance(ids, list) else [],
        "photos": {
            str(k): [str(h) for h in v]
            for k, v in (photos.items() if isinstance(photos, dict) else [])
            if isinstance(v, list)
        },
    }
