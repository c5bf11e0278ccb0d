"""What the agents see: the goal, facts the core computes, recent operations, and the photos.

As in the paper, each request carries the training data (per category), the dialogue and the
log of the user's operations. Beyond the paper it is grounded in facts duetml computes itself:
counts, imbalance, tiny and empty categories, photos that sit in two categories, and once a
model exists its cross-validated accuracy, the pairs of categories it confuses most, and the
photos it gets wrong or is least sure of.

Everything the user or the file system controls (goal, category names, file names, log lines)
is sent inside fenced data blocks (`duetml.llm.fence_data`), with control characters removed
and lengths capped, so a category called "Ignore previous instructions ..." stays data.

The budget, per request, however big the project is (`Budget` below):
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

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from duetml.agents import prompts, sheets
from duetml.errors import DuetmlError
from duetml.llm import ChatMessage, ImageInput, clean_text, fence_data

if TYPE_CHECKING:
    from duetml.project import ImageRecord, Project

ABOUTS = ("chat", "data", "results", "proactive")


@dataclass(frozen=True)
class Budget:
    max_sheets: int = 6
    photos_per_category: int = 12
    photos_per_overview_row: int = 4
    categories_per_overview: int = 8
    results_photos: int = 12
    facts_chars: int = 6_000
    categories_listed: int = 60
    described_categories: int = 30  # text-only models: measured descriptions
    name_chars: int = 60
    log_events: int = 30
    log_chars: int = 2_500
    history_messages: int = 16
    history_chars: int = 12_000
    message_chars: int = 2_000

    @property
    def max_image_bytes(self) -> int:
        return self.max_sheets * sheets.SHEET_MAX_BYTES


DEFAULT_BUDGET = Budget()


@dataclass
class AgentContext:
    """The project state as one prompt section plus the images that go with it."""

    text: str
    images: list[ImageInput] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def image_bytes(self) -> int:
        return sum(len(image.data) for image in self.images)


# --- facts ----------------------------------------------------------------------------------


class _AgentTaggedLog:
    """An interaction log whose entries say the agents caused them (`by: "agent"`).

    The context builder evaluates the model, and `evaluate_project` logs that; the proactive
    agent must not mistake its own looks for the user's activity.
    """

    def __init__(self, log: Any) -> None:
        self._log = log

    def record(self, event: str, **details: Any) -> dict[str, Any]:
        entry: dict[str, Any] = self._log.record(event, **details, by="agent")
        return entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def is_agent_event(event: dict[str, Any]) -> bool:
    """Events the agents themselves caused: not a change in what the user is doing."""
    return str(event.get("event", "")).startswith("agent_") or event.get("by") == "agent"


def _short(text: object, limit: int) -> str:
    return clean_text(str(text), max_chars=limit, one_line=True)


def _model_key(project: Project) -> tuple[Any, ...] | None:
    from duetml.training import model_path

    try:
        stat = model_path(project).stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class FactGatherer:
    """Facts from the core, with the model evaluation cached until the model or data change."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.Lock()
        self._eval_key: tuple[Any, ...] | None = None
        self._eval: dict[str, Any] | None = None

    def gather(self, budget: Budget = DEFAULT_BUDGET) -> dict[str, Any]:
        from duetml.health import duplicate_groups, project_status

        project = self.project
        status = project_status(project, check_files=False)
        groups = duplicate_groups(project)
        facts: dict[str, Any] = {
            "goal": project.goal,
            "categories": status.categories,
            "images": status.images,
            "test_images": status.test_images,
            "warnings": [w.message for w in status.warnings if w.kind != "duplicate"],
            "duplicates": {"groups": len(groups), "examples": groups[:5]},
            "model": status.model,
            "evaluation": self._evaluation(budget) if status.model else None,
        }
        return facts

    def _evaluation(self, budget: Budget) -> dict[str, Any] | None:
        from duetml.project import Project
        from duetml.training import evaluate_project, load_model

        project = self.project
        key = (
            _model_key(project),
            project.fingerprint(),
            tuple(r.rel for r in project.images("test")),
        )
        with self._lock:
            if key == self._eval_key:
                return self._eval
            quiet = Project(project.root, source=project.log.source)
            quiet.log = _AgentTaggedLog(quiet.log)  # type: ignore[assignment]
            try:
                model = load_model(quiet)
                report = evaluate_project(quiet)
            except DuetmlError as exc:  # e.g. too few photos for cross-validation
                result: dict[str, Any] | None = {"unavailable": str(exc)}
            else:
                result = {
                    "source": report.source,
                    "accuracy": report.accuracy,
                    "stale": report.stale,
                    "confused_pairs": report.confused_pairs(5),
                    "mistakes": report.mistakes[: budget.results_photos],
                    "least_sure": _least_sure(model.meta.get("cv_results") or [], 4),
                }
            self._eval_key, self._eval = key, result
            return result


# A correct prediction at or above this confidence is not "unsure"; listing it would be noise.
UNSURE_BELOW = 0.8


def _least_sure(rows: Sequence[Sequence[Any]], limit: int) -> list[dict[str, Any]]:
    """Correct out-of-fold predictions with the lowest confidence: the borderline photos."""
    correct = [r for r in rows if len(r) == 4 and r[1] == r[2] and float(r[3]) < UNSURE_BELOW]
    correct.sort(key=lambda r: float(r[3]))
    return [
        {"image": r[0], "true": r[1], "confidence": round(float(r[3]), 4)} for r in correct[:limit]
    ]


def render_facts(facts: dict[str, Any], budget: Budget = DEFAULT_BUDGET) -> str:
    """The facts as plain lines; the caller fences them (they hold category and file names)."""

    def name(text: object) -> str:
        return _short(text, budget.name_chars)

    lines: list[str] = []
    categories = facts["categories"]
    if categories:
        lines.append("Categories (number. name: training photos, + test photos):")
        for index, cat in enumerate(categories[: budget.categories_listed], start=1):
            test = f" (+{cat['test_images']} test)" if cat.get("test_images") else ""
            lines.append(f"{index}. {name(cat['name'])}: {cat['images']}{test}")
        if len(categories) > budget.categories_listed:
            lines.append(f"... and {len(categories) - budget.categories_listed} more categories.")
        lines.append(
            f"Total: {facts['images']} training photos in {len(categories)} categories"
            + (f", {facts['test_images']} test photos." if facts.get("test_images") else ".")
        )
    else:
        lines.append("No categories yet: the user has not added any photos.")
    if facts["warnings"]:
        lines.append("Checks by duetml:")
        lines += [f"- {_short(w, 240)}" for w in facts["warnings"][:12]]
    dup = facts["duplicates"]
    if dup["groups"]:
        lines.append(
            f"The same photo sits in more than one category ({dup['groups']} case(s)), e.g.:"
        )
        lines += [f"- {' = '.join(_short(r, 120) for r in group[:3])}" for group in dup["examples"]]
    model = facts.get("model")
    if not model:
        lines.append("Model: not trained yet.")
    else:
        acc = model.get("cv_accuracy")
        acc_text = (
            f"cross-validated accuracy {acc:.1%}" if acc is not None else "no accuracy estimate"
        )
        when = _ago(model.get("trained_at"))
        stale = (
            "; the data changed since, so it is out of date" if model.get("older_than_data") else ""
        )
        lines.append(f"Model: trained {when}, {acc_text}{stale}.")
        lines += _evaluation_lines(facts.get("evaluation"), name)
    return clean_text("\n".join(lines), max_chars=budget.facts_chars)


def _evaluation_lines(evaluation: dict[str, Any] | None, name: Any) -> list[str]:
    if not evaluation:
        return []
    if "unavailable" in evaluation:
        return [f"Evaluation: not available ({_short(evaluation['unavailable'], 200)})."]
    lines = [f"Evaluation on the {evaluation['source']}: accuracy {evaluation['accuracy']:.1%}."]
    if evaluation["confused_pairs"]:
        lines.append("Most confused (true category -> predicted as: photos, share of true):")
        lines += [
            f"- {name(t)} -> {name(p)}: {count} ({share:.0%})"
            for t, p, count, share in evaluation["confused_pairs"]
        ]
    number = 0
    if evaluation["mistakes"]:
        lines.append("Photos the model gets wrong, most confident first (numbers as on the sheet):")
        for mistake in evaluation["mistakes"]:
            number += 1
            lines.append(
                f"{number}. {_short(mistake['image'], 100)}: is {name(mistake['true'])}, "
                f"predicted {name(mistake['predicted'])} ({mistake['confidence']:.0%} sure)"
            )
    if evaluation["least_sure"]:
        lines.append("Correct, but the model is least sure of (cross-validation):")
        for item in evaluation["least_sure"]:
            number += 1
            lines.append(
                f"{number}. {_short(item['image'], 100)}: {name(item['true'])} "
                f"({item['confidence']:.0%} sure)"
            )
    return lines


def _ago(ts: object) -> str:
    try:
        seconds = max(time.time() - float(ts), 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "at an unknown time"
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


# --- the interaction log --------------------------------------------------------------------

_SKIP_KEYS = {"ts", "event", "source", "by"}


def summarize_events(events: Sequence[dict[str, Any]], budget: Budget = DEFAULT_BUDGET) -> str:
    """One short line per recent user operation, newest last; agent events left out."""
    lines = []
    for event in [e for e in events if not is_agent_event(e)][-budget.log_events :]:
        details = []
        for key, value in event.items():
            if key in _SKIP_KEYS:
                continue
            if isinstance(value, list):
                shown = ", ".join(str(v) for v in value[:3])
                value = f"[{shown}{', ...' if len(value) > 3 else ''}] ({len(value)})"
            details.append(f"{key}={value}")
        text = f"{_ago(event.get('ts'))}: {event.get('event', '?')} {' '.join(details)}"
        lines.append(_short(text, 200))
    text = "\n".join(lines)
    if len(text) > budget.log_chars:  # keep the newest events, which matter most
        text = "…" + text[-(budget.log_chars - 1) :]
    return text


# --- the dialogue ---------------------------------------------------------------------------


def _turn_text(message: dict[str, Any], budget: Budget) -> str | None:
    kind, content = (
        message.get("kind"),
        clean_text(str(message.get("content", "")), max_chars=budget.message_chars),
    )
    if kind == "error":
        return None
    if kind in prompts.EMPTY_ASK_TEXT and message.get("role") == "user":
        label = prompts.EMPTY_ASK_TEXT[kind]
        return f"{label} {content}".strip() if content else label
    if kind == "proactive":
        return prompts.PROACTIVE_PREFIX + content
    return content


def _bounded_tail(messages: Sequence[dict[str, Any]], budget: Budget) -> list[tuple[str, str]]:
    turns = [(m["role"], t) for m in messages if (t := _turn_text(m, budget))]
    turns = turns[-budget.history_messages :]
    while turns and sum(len(t) for _, t in turns) > budget.history_chars:
        turns.pop(0)
    return turns


def history_messages(
    conversation: Sequence[dict[str, Any]], budget: Budget = DEFAULT_BUDGET
) -> list[ChatMessage]:
    """The saved dialogue as chat turns for the passive agent, newest kept when cut."""
    return [ChatMessage(role, text) for role, text in _bounded_tail(conversation, budget)]  # type: ignore[arg-type]


def render_transcript(
    conversation: Sequence[dict[str, Any]], budget: Budget = DEFAULT_BUDGET
) -> str:
    """The dialogue as text, for the proactive agent, which reads it as data."""
    names = {"user": "User", "assistant": "Assistant"}
    return "\n\n".join(
        f"{names[role]}: {text}" for role, text in _bounded_tail(conversation, budget)
    )


# --- images ---------------------------------------------------------------------------------

_SHEET_CACHE: OrderedDict[tuple[Any, ...], bytes | None] = OrderedDict()
_SHEET_CACHE_LOCK = threading.Lock()
_SHEET_CACHE_SIZE = 64


def _cached_sheet(title: str, tiles: list[sheets.Tile]) -> bytes | None:
    """Sheets are redrawn only when a photo on them changes (same photos, same bytes)."""
    key: list[Any] = [title]
    for tile in tiles:
        try:
            stat = tile.path.stat()
        except OSError:
            continue
        key.append((str(tile.path), tile.caption, stat.st_mtime_ns, stat.st_size))
    cache_key = tuple(key)
    with _SHEET_CACHE_LOCK:
        if cache_key in _SHEET_CACHE:
            _SHEET_CACHE.move_to_end(cache_key)
            return _SHEET_CACHE[cache_key]
    data = sheets.draw_sheet(title, tiles)
    with _SHEET_CACHE_LOCK:
        _SHEET_CACHE[cache_key] = data
        while len(_SHEET_CACHE) > _SHEET_CACHE_SIZE:
            _SHEET_CACHE.popitem(last=False)
    return data


@dataclass
class _Attachment:
    image: ImageInput
    description: str


def category_attachments(
    project: Project,
    numbered: Sequence[tuple[int, str]],
    max_sheets: int,
    budget: Budget = DEFAULT_BUDGET,
) -> tuple[list[_Attachment], list[int]]:
    """Sheets for categories (number, name); returns them and the numbers left without one."""
    by_category = {name: _photos_of(project, name) for _, name in numbered}
    filled = [(n, name) for n, name in numbered if by_category[name]]
    if max_sheets <= 0 or not filled:
        return [], [n for n, _ in filled]
    attachments: list[_Attachment] = []
    if len(filled) <= max_sheets:
        for number, name in filled:
            photos = sheets.spread(by_category[name], budget.photos_per_category)
            title = f"Category {number}: {name} ({len(photos)} of {len(by_category[name])} photos)"
            data = _cached_sheet(title, [sheets.Tile(r.path) for r in photos])
            if data:
                attachments.append(
                    _Attachment(
                        ImageInput.from_bytes(data, label=f"category {number}: {name}"),
                        f"a contact sheet of category {number}, {len(photos)} of its "
                        f"{len(by_category[name])} photos",
                    )
                )
        return attachments, []
    per_sheet = budget.categories_per_overview
    groups = [filled[i : i + per_sheet] for i in range(0, len(filled), per_sheet)][:max_sheets]
    shown = {n for group in groups for n, _ in group}
    for group in groups:
        tiles = [
            sheets.Tile(record.path, caption=f"{number}. {name}")
            for number, name in group
            for record in sheets.spread(by_category[name], budget.photos_per_overview_row)
        ]
        first, last = group[0][0], group[-1][0]
        data = _cached_sheet(f"Categories {first}-{last}, a few photos each", tiles)
        if data:
            attachments.append(
                _Attachment(
                    ImageInput.from_bytes(data, label=f"categories {first} to {last}"),
                    f"an overview sheet of categories {first} to {last}, up to "
                    f"{budget.photos_per_overview_row} photos each, captioned with their numbers",
                )
            )
    return attachments, [n for n, _ in filled if n not in shown]


def results_attachment(project: Project, evaluation: dict[str, Any] | None) -> _Attachment | None:
    """One sheet of the photos the model gets wrong, then those it is least sure of."""
    if not evaluation or "unavailable" in evaluation:
        return None
    tiles = []
    items = list(evaluation["mistakes"]) + list(evaluation["least_sure"])
    for number, item in enumerate(items, start=1):
        try:
            record = project.image(str(item["image"]))
        except DuetmlError:
            continue  # moved or removed since the model was trained
        tiles.append(sheets.Tile(record.path, caption=str(number)))
    if not tiles:
        return None
    data = _cached_sheet("Photos the model gets wrong or is unsure of (numbered)", tiles)
    if not data:
        return None
    return _Attachment(
        ImageInput.from_bytes(data, label="photos the model gets wrong or is unsure of"),
        "a sheet of the photos the model gets wrong or is least sure of, captioned with the "
        "numbers of the list in the facts",
    )


def _photos_of(project: Project, category: str) -> list[ImageRecord]:
    try:
        return project.images("train", category)
    except DuetmlError:  # removed or renamed since the facts were gathered
        return []


def describe_photos(records: Sequence[ImageRecord], sample: int = 8) -> str:
    """A few measurable words about a category's photos, for a model that cannot see them."""
    from PIL import Image

    from duetml.images import load_rgb

    sizes: list[tuple[int, int]] = []
    colours: list[tuple[int, ...]] = []
    for record in sheets.spread(records, sample):
        try:
            with Image.open(record.path) as image:
                sizes.append(image.size)
            tiny = load_rgb(record.path, max_side=32).resize((1, 1), Image.Resampling.BOX)
            pixel = tiny.getpixel((0, 0))
            if isinstance(pixel, tuple):
                colours.append(pixel[:3])
        except (DuetmlError, OSError, ValueError):
            continue
    if not sizes:
        return "no readable photos"
    sizes.sort(key=lambda s: s[0] * s[1])
    width, height = sizes[len(sizes) // 2]
    landscape = sum(w > h for w, h in sizes)
    portrait = sum(h > w for w, h in sizes)
    shape = (
        "mostly landscape"
        if landscape > len(sizes) / 2
        else "mostly portrait"
        if portrait > len(sizes) / 2
        else "mixed or square"
    )
    r, g, b = (sum(c[i] for c in colours) // max(len(colours), 1) for i in range(3))
    brightness = (r + g + b) / 3
    tone = "dark" if brightness < 85 else "bright" if brightness > 170 else "medium"
    return (
        f"sampled {len(sizes)}: typical size {width}x{height}, {shape}, "
        f"average colour #{r:02x}{g:02x}{b:02x} ({tone})"
    )


# --- the builder ----------------------------------------------------------------------------


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
            attachments: list[_Attachment] = []
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
                f"{n}. {_short(name, budget.name_chars)}: "
                + describe_photos(_photos_of(self.project, name))
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
