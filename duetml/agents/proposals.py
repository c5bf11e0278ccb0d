"""Proposals: concrete changes an agent offers, which the user applies with one click.

An agent may propose to move or remove photos, rename or merge categories, or add one. Where
the model supports tool calling it calls `propose_change` (`PROPOSAL_TOOL`); otherwise it
writes a fenced JSON block, which is taken out of the text shown. Either way the proposal is
untrusted model output: `validate` checks it against the project (photos that exist, by their
"#n" from the facts or their file; categories that exist; valid new names) and turns it into
a `review.Suggestion` with a label for a button ("Move 5 photos from hat to shoes"). Nothing
is applied until the user clicks; `apply` then runs it as ONE undoable operation through
`review.apply_suggestion`, logged as an applied proposal (`origin: "proposal"`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from duetml import jsonfile
from duetml.errors import DuetmlError
from duetml.llm import ToolCall, ToolSpec, clean_text

if TYPE_CHECKING:
    from duetml.project import Project
    from duetml.review import Suggestion

ACTIONS = ("move", "remove", "rename", "merge", "add_category")
MAX_PER_REPLY = 5
MAX_REASON_CHARS = 300
MAX_PHOTOS = 200

PROPOSAL_TOOL = ToolSpec(
    name="propose_change",
    description=(
        "Propose one concrete change to the user's training data. It is shown to the user as "
        "a button and applied only if they click it. Call it once per change."
    ),
    parameters={
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": list(ACTIONS)},
            "photos": {
                "type": "array",
                "items": {"type": "string"},
                "description": 'move/remove: the photos, by their number in the facts ("#3")',
            },
            "categories": {
                "type": "array",
                "items": {"type": "string"},
                "description": (
                    "rename: the category to rename; merge: the categories to merge; "
                    "move: the category the photos are in now"
                ),
            },
            "to": {
                "type": "string",
                "description": (
                    "move: the category to move the photos to; merge: the category they "
                    "become; rename: the new name; add_category: the new category"
                ),
            },
            "reason": {"type": "string", "description": "one sentence for the user"},
        },
        "required": ["action"],
    },
)

_FENCED = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```", re.DOTALL)


@dataclass(frozen=True)
class Proposal:
    """A validated change: the suggestion to apply, a button label and the agent's reason."""

    id: str
    suggestion: Suggestion
    reason: str

    @property
    def label(self) -> str:
        return self.suggestion.label

    def stored(self) -> dict[str, Any]:
        """What the conversation keeps: enough to apply it later, and each photo it touches,
        so a person sees every one before applying it."""
        return {
            "id": self.id,
            "label": self.label,
            "reason": self.reason,
            "photos": list(self.suggestion.photos),
            "suggestion": jsonfile.plain(self.suggestion),
        }


def raw_proposals(text: str, calls: Sequence[ToolCall] = ()) -> tuple[str, list[dict[str, Any]]]:
    """The proposals in a reply: tool calls, then fenced JSON blocks (taken out of the text).

    A fenced block that is not a proposal (an example the user asked for) stays in the text.
    """
    found = [dict(c.arguments) for c in calls if c.name == PROPOSAL_TOOL.name]

    def take(match: re.Match[str]) -> str:
        try:
            data = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        items = data.get("proposals", data) if isinstance(data, dict) else data
        items = items if isinstance(items, list) else [items]
        if not items or not all(isinstance(i, dict) and "action" in i for i in items):
            return match.group(0)
        found.extend(items)
        return ""

    cleaned = _FENCED.sub(take, text)
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned).strip()
    return cleaned, found


def validate(project: Project, raw: Mapping[str, Any], photos: Mapping[int, str]) -> Proposal:
    """A proposal checked against the project now; DuetmlError with one sentence if it cannot
    be applied. `photos` maps the "#n" of the request's facts to project-relative paths."""
    from duetml.names import validate_category_name
    from duetml.review import Suggestion

    action = str(raw.get("action", "")).strip().lower().replace(" ", "_")
    action = {"add": "add_category", "delete": "remove", "move_photos": "move"}.get(action, action)
    if action not in ACTIONS:
        raise DuetmlError(f"The proposal's action must be one of {', '.join(ACTIONS)}.")
    known = set(project.category_names("train")) | set(project.category_names("test"))
    categories = [_name(c) for c in _as_list(raw.get("categories") or raw.get("from"))]
    to_raw = raw.get("to") or raw.get("name") or raw.get("new_name")
    to = _name(to_raw) if to_raw else None
    rels = _photos(project, raw.get("photos"), photos)
    reason = clean_text(str(raw.get("reason") or ""), max_chars=MAX_REASON_CHARS, one_line=True)

    def existing(name: str) -> str:
        if name not in known:
            raise DuetmlError(f"The proposal names a category {name!r} that does not exist.")
        return name

    if action in ("move", "remove"):
        if not rels:
            raise DuetmlError(f"A proposal to {action} photos must name the photos.")
        sources = sorted({rel.split("/")[1] for rel in rels})
        where = f" from {', '.join(sources)}" if len(sources) <= 3 else ""
        count = _count(len(rels))
        if action == "remove":
            suggestion = Suggestion("remove", tuple(rels), None, tuple(sources), "")
            label = f"Remove {count}{where}"
        else:
            if not to:
                raise DuetmlError("A proposal to move photos must name the category to move to.")
            to = validate_category_name(to)
            if sources == [to]:
                raise DuetmlError(f"Those photos are in {to!r} already.")
            new = "" if to in known else " (a new category)"
            suggestion = Suggestion("move", tuple(rels), to, tuple(sources), "")
            label = f"Move {count}{where} to {to}{new}"
    elif action == "rename":
        if len(categories) != 1 or not to:
            raise DuetmlError("A rename proposal needs one category and its new name.")
        old, to = existing(categories[0]), validate_category_name(to)
        if to in known:
            raise DuetmlError(f"Category {to!r} exists already: propose a merge instead.")
        suggestion = Suggestion("rename", (), to, (old,), "")
        label = f"Rename {old} to {to}"
    elif action == "merge":
        if to is None and len(categories) >= 2:
            categories, to = categories[:-1], categories[-1]
        if not categories or not to:
            raise DuetmlError("A merge proposal needs the categories and the one they become.")
        to = validate_category_name(to)
        sources = [existing(c) for c in dict.fromkeys(categories) if c != to]
        if not sources:
            raise DuetmlError("A merge proposal needs at least one other category.")
        suggestion = Suggestion("merge", (), to, tuple(sources), "")
        label = f"Merge {', '.join(sources)} into {to}"
    else:  # add_category
        name = to or (categories[0] if len(categories) == 1 else None)
        if not name:
            raise DuetmlError("A proposal to add a category must name it.")
        name = validate_category_name(name)
        if name in known:
            raise DuetmlError(f"Category {name!r} exists already.")
        suggestion = Suggestion("add_category", (), name, (), "")
        label = f"Add category {name}"
    suggestion = Suggestion(
        suggestion.action, suggestion.photos, suggestion.to, suggestion.categories, label
    )
    digest = json.dumps(jsonfile.plain(suggestion), sort_keys=True).encode()
    return Proposal(hashlib.sha256(digest).hexdigest()[:12], suggestion, reason)


def from_reply(
    project: Project,
    text: str,
    calls: Sequence[ToolCall],
    photos: Mapping[int, str],
) -> tuple[str, list[Proposal], list[str]]:
    """The text to show, the valid proposals (at most MAX_PER_REPLY, no repeats), and one
    sentence per proposal that could not be used."""
    cleaned, raws = raw_proposals(text, calls)
    valid: dict[str, Proposal] = {}
    problems: list[str] = []
    for raw in raws[: MAX_PER_REPLY * 2]:
        try:
            proposal = validate(project, raw, photos)
        except DuetmlError as exc:
            problems.append(str(exc))
            continue
        valid.setdefault(proposal.id, proposal)
    return cleaned, list(valid.values())[:MAX_PER_REPLY], problems


def apply(project: Project, stored: Mapping[str, Any]) -> str:
    """Apply a stored proposal as one undoable operation; returns a sentence for the user."""
    from duetml.review import apply_suggestion, suggestion_from

    suggestion = suggestion_from(stored["suggestion"])
    return apply_suggestion(project, suggestion, "proposal")


def _count(n: int) -> str:
    return "1 photo" if n == 1 else f"{n} photos"


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _name(value: object) -> str:
    return clean_text(str(value), max_chars=120, one_line=True).strip().strip("'\"`")


def _photos(project: Project, value: object, numbers: Mapping[int, str]) -> list[str]:
    rels: list[str] = []
    for item in _as_list(value)[:MAX_PHOTOS]:
        text = str(item).strip().lstrip("#").strip()
        if text.isdigit():
            rel = numbers.get(int(text))
            if rel is None:
                raise DuetmlError(f"The proposal names photo #{text}, which the facts do not list.")
        else:
            rel = text
        try:
            record = project.image(rel)
        except DuetmlError:
            raise DuetmlError(
                f"The proposal names a photo that is not in the project ({rel[:80]!r})."
            ) from None
        rels.append(record.rel)
    return list(dict.fromkeys(rels))
