"""What the agents see: the goal, facts the core computes, recent operations, and the photos.

As in the paper, each request carries the training data (per category), the dialogue and the
log of the user's operations. Beyond the paper it is grounded in facts duetml computes itself:
counts, imbalance, tiny and empty categories, photos that sit in two categories, and once a
model exists its cross-validated accuracy, the pairs of categories it confuses most, and the
photos it gets wrong or is least sure of.

Everything the user or the file system controls (goal, category names, file names, log lines)
is sent inside fenced data blocks (`duetml.llm.fence_data`), with control characters removed
and lengths capped, so a category called "Ignore previous instructions ..." stays data.

The parts live beside this builder: `facts` (gathering and rendering the facts), `history`
(the log summary and the dialogue), `attachments` (contact sheets and descriptions of photos),
`budget` (the bounds below).

The budget, per request, however big the project is (`budget.Budget`):
- at most 6 images, each a JPEG contact sheet of at most 1024 x 1024 pixels and 160 KB
  (`sheets.SHEET_MAX_SIDE`, `sheets.SHEET_MAX_BYTES`): at most 960 KB of images;
- one sheet per category with up to 12 photos; with more categories than sheets, the most
  relevant categories (confused, flagged by the data review, recently changed, small; never
  alphabetical) share all the sheet slots evenly, at most 8 per sheet, the rest named in text;
- photos the facts name ("#3": findings of the data review, the model's mistakes) come first
  on their category's sheet, captioned with their number; "results" asks spend one sheet on
  up to 12 of them. The facts say which image shows a photo only when it is attached;
- text: facts at most 8,000 characters (every category name listed), the log summary at most
  30 events / 2,500 characters, the dialogue at most 16 messages / 12,000 characters, 2,000
  per message.
A text-only model gets no images but a measured description (size, orientation, average
colour of 8 sampled photos) of at most 30 categories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from duetml.agents.attachments import (
    Attachment,
    category_attachments,
    describe_photos,
    numbered_attachment,
    photos_of,
)
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.agents.conversation import Message
from duetml.agents.facts import (
    Evaluation,
    FactGatherer,
    Facts,
    PhotoNumbers,
    ago,
    number_photos,
    render_facts,
    short,
)
from duetml.agents.history import (
    collapse_events,
    history_messages,
    is_agent_event,
    render_transcript,
    split_events,
    summarize_events,
)
from duetml.llm import ImageInput, fence_data

if TYPE_CHECKING:
    from duetml.project import Project

# Re-exported: callers import the budget and the log helpers from here.
__all__ = [
    "ABOUTS",
    "DEFAULT_BUDGET",
    "AgentContext",
    "Budget",
    "ContextBuilder",
    "history_messages",
    "is_agent_event",
    "summarize_events",
]

ABOUTS = ("chat", "data", "results", "proactive")


@dataclass
class AgentContext:
    """The project state as one prompt section plus the images that go with it."""

    text: str
    images: list[ImageInput] = field(default_factory=list)
    facts: Facts | None = None
    # The photo numbers the text uses (#n -> project-relative path), to read a reply's "#3".
    photos: dict[int, str] = field(default_factory=dict)

    @property
    def image_bytes(self) -> int:
        return sum(len(image.data) for image in self.images)


class ContextBuilder:
    """Builds the project-state section of each agent request within the budget."""

    def __init__(self, project: Project, budget: Budget = DEFAULT_BUDGET) -> None:
        self.project = project
        self.budget = budget
        self.facts = FactGatherer(project)

    def build(
        self,
        about: str,
        conversation: Sequence[Message] = (),
        *,
        vision: bool = True,
        since: float | None = None,
    ) -> AgentContext:
        """The context for `about`; for the proactive agent, `since` is the time of its last
        look: the operations after it are listed, the older ones collapsed."""
        if about not in ABOUTS:
            raise ValueError(f"about must be one of {ABOUTS}, not {about!r}")
        budget = self.budget
        facts = self.facts.gather(budget)
        numbers = number_photos(facts, budget)
        events = self.project.log.recent(limit=4 * budget.log_events)
        numbered = rank_categories(facts, events)

        parts = ["The current state of the user's project:"]
        goal = facts["goal"].strip()
        parts.append(
            fence_data(goal, title="the user's goal, in their words", max_chars=600)
            if goal
            else "The user has not stated a goal yet."
        )
        facts_at = len(parts)  # the facts go here once the attached images are known
        parts += self._history_parts(about, conversation, events, since)
        images, shown, photo_parts = self._photo_parts(about, vision, numbers, numbered)
        parts += photo_parts
        parts.insert(
            facts_at,
            fence_data(
                render_facts(facts, budget, numbers, shown),
                title="project facts computed by duetml",
                max_chars=budget.facts_chars,
            ),
        )
        return AgentContext(
            text="\n\n".join(parts), images=images, facts=facts, photos=numbers.as_dict()
        )

    def _history_parts(
        self,
        about: str,
        conversation: Sequence[Message],
        events: Sequence[dict[str, Any]],
        since: float | None,
    ) -> list[str]:
        """What the user did (for the proactive agent: since its last look, the rest
        collapsed) and, for the proactive agent, the conversation so far."""
        budget = self.budget
        parts: list[str] = []
        if about == "proactive":
            parts += _changes_parts(self.project, events, since, budget)
        else:
            log_text = summarize_events(events, budget)
            if log_text:
                parts.append(
                    fence_data(
                        log_text,
                        title="the user's recent operations, oldest first",
                        max_chars=budget.log_chars,
                    )
                )
        if about == "proactive":
            transcript = render_transcript(conversation, budget)
            parts.append(
                fence_data(
                    transcript,
                    title="the conversation so far between the user and the assistant",
                    max_chars=budget.history_chars + 200,
                )
                if transcript
                else "The user has not talked with the assistant yet."
            )
        return parts

    def _photo_parts(
        self, about: str, vision: bool, numbers: PhotoNumbers, numbered: list[tuple[int, str]]
    ) -> tuple[list[ImageInput], dict[int, int], list[str]]:
        """The images to attach (contact sheets within the budget), which photo number is on
        which image, and the lines that say so; without vision, a description instead."""
        budget = self.budget
        parts: list[str] = []
        images: list[ImageInput] = []
        shown: dict[int, int] = {}  # photo number -> the image it is drawn on
        if vision:
            attachments: list[Attachment] = []
            sheets_left = budget.max_sheets
            if about == "results":
                numbered_sheet = numbered_attachment(self.project, numbers.as_dict(), budget)
                if numbered_sheet:
                    attachments.append(numbered_sheet)
                    sheets_left -= 1
            category_sheets, without = category_attachments(
                self.project, numbered, sheets_left, budget, numbers.by_rel()
            )
            attachments += category_sheets
            images = [a.image for a in attachments]
            for index, attachment in enumerate(attachments, start=1):
                for number in attachment.numbers:
                    shown.setdefault(number, index)
            if attachments:
                parts.append(
                    "Attached images, in order:\n"
                    + "\n".join(
                        f"Image {i}: {a.description}." for i, a in enumerate(attachments, start=1)
                    )
                )
            if without:
                listed = ", ".join(str(n) for n in sorted(without)[:40])
                more = f" and {len(without) - 40} more" if len(without) > 40 else ""
                parts.append(
                    f"No photos are attached for categories {listed}{more} (image budget)."
                )
        elif numbered:
            described = "\n".join(
                f"{n}. {short(name, budget.name_chars)}: "
                + describe_photos(photos_of(self.project, name))
                for n, name in numbered[: budget.described_categories]
            )
            parts.append(
                "You cannot see the photos (the model in use accepts no images). A measured "
                "description of the photos of the most relevant categories instead:\n"
                + fence_data(described, title="photo descriptions", max_chars=4000)
            )
        return images, shown, parts


def _changes_parts(
    project: Project, recent: Sequence[dict[str, Any]], since: float | None, budget: Budget
) -> list[str]:
    """What changed since the proactive agent's last look, and before it in one line."""
    if since is None:
        older: list[dict[str, Any]] = []
        new = [e for e in recent if not is_agent_event(e)]
        head = "This is your first look at this project. The user's operations so far"
    else:
        # The whole log, not only the recent tail: the collapsed line covers everything.
        older, new = split_events(project.log.recent(limit=100_000), since)
        head = f"What the user did since your last look ({ago(since)})"
    parts = []
    if older:
        parts.append(
            fence_data(
                collapse_events(older),
                title="the user's earlier operations, collapsed",
                max_chars=600,
            )
        )
    text = summarize_events(new, budget)
    parts.append(
        fence_data(text, title=f"{head}, oldest first", max_chars=budget.log_chars)
        if text
        else f"{head}: nothing (the data and the model are as they were)."
    )
    return parts


# How much each signal makes a category worth a look; the ranking decides which categories
# get photos on the sheets when there are more categories than sheet slots.
_CONFUSED, _FLAGGED, _CHANGED, _SMALL = 4.0, 4.0, 2.0, 1.0


def rank_categories(facts: Facts, events: Sequence[dict[str, Any]] = ()) -> list[tuple[int, str]]:
    """Categories with photos as (number, name), most relevant first.

    Relevant: confused by the model, flagged by the data review, recently changed by the user,
    small. Ties go to the category with fewer photos (more likely to need a look), so the
    order is never alphabetical and no category is out of reach because of its number.
    """
    categories = [(i, c) for i, c in enumerate(facts["categories"], start=1) if c["images"]]
    score: dict[str, float] = {c["name"]: 0.0 for _, c in categories}

    def add(name: object, weight: float) -> None:
        if isinstance(name, str) and name in score:
            score[name] += weight

    evaluation = facts.get("evaluation")
    if isinstance(evaluation, Evaluation):
        for rank, (true, predicted, _, _) in enumerate(evaluation.confused_pairs):
            add(true, _CONFUSED / (1 + rank * 0.1))
            add(predicted, _CONFUSED / (1 + rank * 0.1))
    for rank, finding in enumerate(facts.get("findings") or []):
        weight = _FLAGGED * float(finding.get("score") or 0.5) / (1 + rank * 0.1)
        names = set(finding.get("categories") or ())
        names |= {rel.split("/")[1] for rel in finding.get("photos") or () if rel.count("/") == 2}
        for name in names:
            add(name, weight)
    for rank, name in enumerate(_changed_categories(events)):
        add(name, _CHANGED / (1 + rank * 0.2))  # the newest change matters most
    counts = sorted(c["images"] for _, c in categories)
    if counts:
        median = counts[len(counts) // 2]
        for _, cat in categories:
            if cat["images"] < max(TINY_PHOTOS, median / 2):
                add(cat["name"], _SMALL)
    categories.sort(key=lambda item: (-score[item[1]["name"]], item[1]["images"], item[0]))
    return [(i, c["name"]) for i, c in categories]


# Below this many photos a category is "small" whatever the others hold.
TINY_PHOTOS = 10
_CATEGORY_KEYS = ("category", "to", "target", "new", "old", "sources", "categories")


def _changed_categories(events: Sequence[dict[str, Any]]) -> list[str]:
    """Categories the user's recent operations touched, newest first (agent events left out)."""
    changed: dict[str, None] = {}
    for event in reversed(events):
        if is_agent_event(event):
            continue
        names: list[object] = []
        for key in _CATEGORY_KEYS:
            value = event.get(key)
            names += value if isinstance(value, list) else [value]
        rels = event.get("images")
        for rel in rels if isinstance(rels, list) else ():
            if isinstance(rel, str) and rel.count("/") == 2:
                names.append(rel.split("/")[1])
        changed |= {name: None for name in names if isinstance(name, str)}
    return list(changed)
