"""Acting on findings: every fix goes through the Project operations, so it is one
undoable, logged operation; so is "keep as is" (a dismissal).

Fixes are one photo at a time: a finding that covers several photos is applied to the photos
the user chose (``photos=[...]``); without a choice, only a suggestion touching at most
UNCHOSEN_LIMIT photos applies, so nothing removes 53 photos in one click.

"Keep as is" is remembered in .duetml/review-kept/, one small file per keep, created through
the undo journal: `duetml undo` (and the page's Undo) takes the file to the trash and the
finding is raised again; redo brings it back. Keeping chosen photos of a finding hides those
photos from it (a copies group without them, a mislabel not raised for them again). The
older single file .duetml/review-dismissed.json is still read.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec
from msgspec.structs import replace

from duetml.errors import DuetmlError, NotFoundError
from duetml.names import validate_category_name
from duetml.review.types import ACTIONS, Finding, Suggestion, photos_text

if TYPE_CHECKING:
    from duetml.project import Project

DISMISSED_FILE = "review-dismissed.json"  # before keeps were undoable: read, never written


class KeptAsIs(msgspec.Struct):
    """A file of .duetml/review-kept/ (one undoable "keep as is"), or the older
    review-dismissed.json: findings and photos the user said are right."""

    ids: list[str] = msgspec.field(default_factory=list)  # whole findings
    # Photos kept of a kind of finding, by content hash: kept wherever they are moved.
    photos: dict[str, list[str]] = msgspec.field(default_factory=dict)
    finding: str | None = None  # the finding kept, when one was
    ts: float | None = None


KEPT_DIR = "review-kept"
UNCHOSEN_LIMIT = 5  # photos a suggestion may touch without the user choosing them
MAX_CHOSEN = 1000  # photos one request may choose
PHOTO_ACTIONS = ("move", "remove", "split")
PAIR_KINDS = ("near_duplicate", "leak")  # a group needs two photos to be a finding
FixAction = Literal["suggested", "remove", "keep"]


def chosen_photos(finding: Finding, photos: Sequence[str]) -> list[str]:
    """The photos a user chose, checked: photos of this finding only, at least one."""
    chosen = list(dict.fromkeys(photos))
    if not chosen:
        raise DuetmlError("Choose at least one photo of the finding.")
    if len(chosen) > MAX_CHOSEN:
        raise DuetmlError(f"Choose at most {MAX_CHOSEN} photos at a time.")
    if not finding.photos:
        raise DuetmlError(
            "This finding is about categories, not photos: keep it or apply it as a whole."
        )
    foreign = [p for p in chosen if p not in finding.photos]
    if foreign:
        raise DuetmlError(
            f"{foreign[0]!r} is not one of this finding's photos: choose among "
            f"the {photos_text(len(finding.photos))} `duetml review` lists under it.",
            web=f"{foreign[0]!r} is not one of this finding's photos: choose among the "
            f"{photos_text(len(finding.photos))} shown under it in Things to check.",
        )
    return chosen


def _label(action: str, count: int, to: str | None) -> str:
    if action == "remove":
        return f"Remove {photos_text(count)}"
    return f"Move {photos_text(count)} to {to}" if to else f"Move {photos_text(count)}"


def apply_finding(
    project: Project,
    finding_id: str,
    extract: bool = True,
    photos: Sequence[str] | None = None,
    action: FixAction = "suggested",
) -> str:
    """Apply a finding's suggestion (or remove, or keep) as one undoable operation.

    ``photos``: the photos of the finding the user chose; the suggestion applies to them only.
    Without a choice, a suggestion that moves or removes more than UNCHOSEN_LIMIT photos is
    refused with one sentence. A finding whose suggestion is "keep" (or none) is kept.
    """
    from duetml.review import review_project

    finding = review_project(project, extract=extract).get(finding_id)
    chosen = chosen_photos(finding, photos) if photos is not None else None
    suggestion = finding.suggestion
    if action == "keep" or (
        action == "suggested" and (suggestion is None or suggestion.action == "keep")
    ):
        return keep_findings(project, [finding_id], photos=chosen, extract=extract)[1]
    if action == "remove":
        targets = chosen if chosen is not None else list(finding.photos)
        if not targets:
            raise DuetmlError("This finding is about categories, not photos: none to remove.")
        suggestion = Suggestion(
            "remove", tuple(targets), label=_label("remove", len(targets), None)
        )
    elif suggestion is not None and chosen is not None:
        if suggestion.action not in PHOTO_ACTIONS:
            raise DuetmlError(
                f"This finding's suggestion ({suggestion.label or suggestion.action}) is about "
                "categories: it applies as a whole, not to chosen photos."
            )
        suggestion = replace(
            suggestion,
            photos=tuple(chosen),
            label=_label(suggestion.action, len(chosen), suggestion.to),
        )
    assert suggestion is not None
    if chosen is None and suggestion.action in PHOTO_ACTIONS:
        count = len(suggestion.photos)
        if count > UNCHOSEN_LIMIT:
            verb = "remove" if suggestion.action == "remove" else "move"
            raise DuetmlError(
                f"This would {verb} {count} photos at once: look at them and choose the ones "
                f"to {verb} (`duetml review apply {finding.id} --photo PHOTO ...`).",
                web=f"This would {verb} {count} photos at once: look at them and tick the "
                f"ones to {verb}.",
            )
    return apply_suggestion(project, suggestion, "review", finding_id=finding_id)


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


PHOTO_KINDS = ("mislabel", "outlier")  # kept as a whole per photo: "this one is right"


def keep_findings(
    project: Project,
    ids: Sequence[str],
    photos: Sequence[str] | None = None,
    extract: bool = True,
) -> tuple[int, str]:
    """Keep findings (or chosen photos of one finding) as they are: one undoable, logged
    operation. Returns how many findings were newly hidden and a sentence for the user."""
    from duetml.review import review_project

    ids = list(dict.fromkeys(ids))
    if not ids:
        raise DuetmlError("Name the findings to keep as they are.")
    if photos is not None and len(ids) != 1:
        raise DuetmlError("Choose photos of one finding at a time.")
    review = review_project(project, extract=extract)
    findings = [review.get(finding_id) for finding_id in ids]
    hashes = project.hashes([project.image(p) for f in findings for p in f.photos])
    record = KeptAsIs(finding=ids[0] if len(ids) == 1 else None, ts=time.time())
    hidden = 0
    for finding in findings:
        chosen = chosen_photos(finding, photos) if photos is not None else list(finding.photos)
        whole = set(chosen) == set(finding.photos)
        if whole:
            record.ids.append(finding.id)
            hidden += 1
        if finding.photos and (not whole or finding.kind in PHOTO_KINDS):
            keys = record.photos.setdefault(finding.kind, [])
            keys += [hashes[p] for p in chosen if p in hashes]
    kept_photos = sum(len(v) for v in record.photos.values())
    if photos is not None and not record.ids:
        what = f"{photos_text(len(photos))} of a finding"
        sentence = f"Kept {what} as {'it is' if len(photos) == 1 else 'they are'}."
    elif len(ids) == 1:
        what = "a finding"
        sentence = "Kept as it is: this will not be raised again (Undo brings it back)."
    else:
        what = f"{len(ids)} findings"
        sentence = f"Kept {len(ids)} findings as they are: they will not be raised again."
    folder = project.state_dir / KEPT_DIR
    path = folder / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json"
    with project.data_lock():
        with project.journal.operation("keep", f"keep {what} as is") as change:
            if not folder.is_dir():
                change.make_dir(folder)
            change.create(path, msgspec.json.format(msgspec.json.encode(record), indent=1))
    project.log.record("keep_findings", findings=ids, photos=kept_photos)
    return hidden, sentence


def dismiss_findings(project: Project, ids: Sequence[str], extract: bool = True) -> int:
    """Keep whole findings as they are (see keep_findings); returns how many were hidden."""
    return keep_findings(project, ids, extract=extract)[0]


def hide_kept(
    findings: Sequence[Finding], dismissed: KeptAsIs, hashes: dict[str, str]
) -> tuple[list[Finding], int]:
    """The findings without those kept as they are, and without the photos kept of the others
    (a copies group of the rest, its suggestion on them only); and how many were hidden."""
    hidden_ids = set(dismissed.ids)
    kept = {kind: set(keys) for kind, keys in dismissed.photos.items()}
    shown: list[Finding] = []
    hidden = 0
    for finding in findings:
        if finding.id in hidden_ids:
            hidden += 1
            continue
        keys = kept.get(finding.kind)
        remaining = [p for p in finding.photos if not keys or hashes.get(p) not in keys]
        if len(remaining) == len(finding.photos):
            shown.append(finding)
            continue
        if not remaining or (finding.kind in PAIR_KINDS and len(remaining) < 2):
            hidden += 1
            continue
        suggestion = finding.suggestion
        if suggestion is not None and suggestion.photos:
            left = tuple(p for p in suggestion.photos if p in remaining)
            suggestion = (
                replace(
                    suggestion,
                    photos=left,
                    label=_label(suggestion.action, len(left), suggestion.to),
                )
                if left
                else None
            )
        gone = len(finding.photos) - len(remaining)
        as_is = "it is" if gone == 1 else "they are"
        message = f"{finding.message} ({photos_text(gone)} of it kept as {as_is}.)"
        shown.append(
            replace(finding, photos=tuple(remaining), suggestion=suggestion, message=message)
        )
    return shown, hidden


def _read_state(path: Path) -> KeptAsIs:
    """A file of kept findings; an absent or damaged one keeps nothing (the findings are
    raised again, and the file stays for a person to look at)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=KeptAsIs)
    except (OSError, msgspec.DecodeError):  # ValidationError is a DecodeError
        return KeptAsIs()


def kept_files(project: Project) -> list[Path]:
    folder = project.state_dir / KEPT_DIR
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".json" and p.is_file())
    except OSError:
        return []


def read_dismissed(project: Project) -> KeptAsIs:
    """Every "keep as is" still in force: the old single file and the journalled keeps."""
    state = _read_state(project.state_dir / DISMISSED_FILE)
    for path in kept_files(project):
        more = _read_state(path)
        state.ids += [i for i in more.ids if i not in state.ids]
        for kind, keys in more.photos.items():
            known = state.photos.setdefault(kind, [])
            known += [k for k in keys if k not in known]
    return state


def dismissals_version(project: Project) -> str:
    """Changes whenever a keep is made, undone or redone (for caches of the review)."""
    parts = []
    for path in (project.state_dir / DISMISSED_FILE, project.state_dir / KEPT_DIR):
        try:
            parts.append(str(os.stat(path).st_mtime_ns))
        except OSError:
            parts.append("0")
    return f"{'/'.join(parts)}/{len(kept_files(project))}"
