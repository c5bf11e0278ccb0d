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
- one sheet per category with up to 12 evenly spread photos; with more categories than
  sheets, overview sheets of 4 photos per category (at most 8 categories per sheet), and
  the rest named in text only;
- "results" asks spend one sheet on up to 12 photos the model gets wrong or is least sure of;
- text: facts at most 6,000 characters, the log summary at most 30 events / 2,500
  characters, the dialogue at most 16 messages / 12,000 characters, 2,000 per message.
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
    photos_of,
    results_attachment,
)
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.agents.facts import FactGatherer, render_facts, short
from duetml.agents.history import (
    history_messages,
    is_agent_event,
    render_transcript,
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
    facts: dict[str, Any] = field(default_factory=dict)

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
        conversation: Sequence[dict[str, Any]] = (),
        *,
        vision: bool = True,
    ) -> AgentContext:
        if about not in ABOUTS:
            raise ValueError(f"about must be one of {ABOUTS}, not {about!r}")
        budget = self.budget
        facts = self.facts.gather(budget)
        numbered = [
            (i, c["name"]) for i, c in enumerate(facts["categories"], start=1) if c["images"]
        ]
        numbered = [(i, n) for i, n in numbered if i <= budget.categories_listed]

        parts = ["The current state of the user's project:"]
        goal = facts["goal"].strip()
        parts.append(
            fence_data(goal, title="the user's goal, in their words", max_chars=600)
            if goal
            else "The user has not stated a goal yet."
        )
        parts.append(
            fence_data(
                render_facts(facts, budget),
                title="project facts computed by duetml",
                max_chars=budget.facts_chars,
            )
        )
        log_text = summarize_events(self.project.log.recent(limit=4 * budget.log_events), budget)
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

        images: list[ImageInput] = []
        if vision:
            attachments: list[Attachment] = []
            sheets_left = budget.max_sheets
            if about == "results":
                result_sheet = results_attachment(self.project, facts.get("evaluation"))
                if result_sheet:
                    attachments.append(result_sheet)
                    sheets_left -= 1
                numbered = _confused_first(numbered, facts.get("evaluation"))
            category_sheets, without = category_attachments(
                self.project, numbered, sheets_left, budget
            )
            attachments = (
                category_sheets + attachments
                if about != "results"
                else attachments + category_sheets
            )
            images = [a.image for a in attachments]
            if attachments:
                parts.append(
                    "Attached images, in order:\n"
                    + "\n".join(
                        f"Image {i}: {a.description}." for i, a in enumerate(attachments, start=1)
                    )
                )
            if without:
                listed = ", ".join(str(n) for n in sorted(without)[:40])
                parts.append(f"No photos are attached for categories {listed} (image budget).")
        elif numbered:
            described = "\n".join(
                f"{n}. {short(name, budget.name_chars)}: "
                + describe_photos(photos_of(self.project, name))
                for n, name in numbered[: budget.described_categories]
            )
            parts.append(
                "You cannot see the photos (the model in use accepts no images). A measured "
                "description of each category's photos instead:\n"
                + fence_data(described, title="photo descriptions", max_chars=4000)
            )
        return AgentContext(text="\n\n".join(parts), images=images, facts=facts)


def _confused_first(
    numbered: list[tuple[int, str]], evaluation: dict[str, Any] | None
) -> list[tuple[int, str]]:
    if not evaluation or "unavailable" in evaluation:
        return numbered
    involved: list[str] = []
    for true, predicted, _, _ in evaluation["confused_pairs"]:
        for name in (true, predicted):
            if name not in involved:
                involved.append(name)
    rank = {name: i for i, name in enumerate(involved)}
    return sorted(numbered, key=lambda item: (rank.get(item[1], len(rank)), item[0]))
