"""The photos attached to an agent request: contact sheets of categories and of results.

One sheet per category with up to 12 photos; with more categories than sheets, the categories
share every sheet slot evenly. Photos the facts name by number (findings of the data review,
mistakes of the model) come first on their category's sheet, captioned "#n"; the rest is an
even spread. "results" asks add one sheet of the numbered photos. Sheets are cached until a
photo on them changes. A text-only model gets a measured description of the photos instead
(`describe_photos`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from duetml.agents import sheets
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.errors import DuetmlError
from duetml.llm import ImageInput

if TYPE_CHECKING:
    from duetml.project import ImageRecord, Project

T = TypeVar("T")


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
class Attachment:
    image: ImageInput
    description: str
    # The photo numbers (#n of the facts) drawn on this sheet.
    numbers: list[int] = field(default_factory=list)


def _pick(
    records: Sequence[ImageRecord], count: int, numbers: Mapping[str, int]
) -> list[tuple[ImageRecord, int | None]]:
    """The numbered (flagged) photos of a category first, then an even spread of the rest.

    A category with more flagged photos than ``count`` gets the first ``count`` of them and
    no others (a real project can have dozens of findings in one category)."""
    flagged = sorted((r for r in records if r.rel in numbers), key=lambda r: numbers[r.rel])
    flagged = flagged[:count]
    rest = [r for r in records if r.rel not in numbers]
    chosen = [(r, numbers[r.rel]) for r in flagged]
    room = max(count - len(flagged), 0)
    return chosen + [(r, None) for r in sheets.spread(rest, room)]


def _groups(items: Sequence[T], count: int) -> list[list[T]]:
    """`items` in `count` consecutive groups whose sizes differ by at most one."""
    count = max(min(count, len(items)), 1)
    size, extra = divmod(len(items), count)
    groups, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        groups.append(list(items[start:end]))
        start = end
    return [g for g in groups if g]


def category_attachments(
    project: Project,
    numbered: Sequence[tuple[int, str]],
    max_sheets: int,
    budget: Budget = DEFAULT_BUDGET,
    photo_numbers: Mapping[str, int] | None = None,
) -> tuple[list[Attachment], list[int]]:
    """Sheets for categories (number, name), most relevant first; returns them and the
    numbers of the categories left without one.

    Every sheet slot is used: up to `max_sheets` categories get a sheet each; more share the
    slots evenly (at most `categories_per_overview` per sheet), each with an equal share of a
    sheet's photos. Photos that have a number in the facts come first, captioned "#n".
    """
    numbers = photo_numbers or {}
    by_category = {name: photos_of(project, name) for _, name in numbered}
    filled = [(n, name) for n, name in numbered if by_category[name]]
    if max_sheets <= 0 or not filled:
        return [], [n for n, _ in filled]
    capacity = max_sheets * budget.categories_per_overview
    groups = _groups(filled[:capacity], max_sheets)
    tiles_per_sheet = budget.photos_per_overview_row * budget.categories_per_overview
    attachments: list[Attachment] = []
    for group in groups:
        per_category = max(min(budget.photos_per_category, tiles_per_sheet // len(group)), 1)
        attachment = (
            _category_sheet(group[0], by_category[group[0][1]], per_category, numbers)
            if len(group) == 1
            else _overview_sheet(group, by_category, per_category, numbers)
        )
        if attachment is not None:
            attachments.append(attachment)
    shown = {n for group in groups for n, _ in group}
    return attachments, [n for n, _ in filled if n not in shown]


def _category_sheet(
    category: tuple[int, str],
    records: Sequence[ImageRecord],
    count: int,
    numbers: Mapping[str, int],
) -> Attachment | None:
    number, name = category
    picked = _pick(records, count, numbers)
    title = f"Category {number}: {name} ({len(picked)} of {len(records)} photos)"
    tiles = [sheets.Tile(r.path, caption=f"#{n}" if n else "") for r, n in picked]
    data = _cached_sheet(title, tiles)
    if not data:
        return None
    on_sheet = [n for _, n in picked if n]
    flagged = " (numbered photos are the ones the facts name by #number)" if on_sheet else ""
    return Attachment(
        ImageInput.from_bytes(data, label=f"category {number}: {name}"),
        f"a contact sheet of category {number}, {len(picked)} of its {len(records)} "
        f"photos{flagged}",
        on_sheet,
    )


def _overview_sheet(
    group: Sequence[tuple[int, str]],
    by_category: Mapping[str, Sequence[ImageRecord]],
    count: int,
    numbers: Mapping[str, int],
) -> Attachment | None:
    tiles: list[sheets.Tile] = []
    on_sheet: list[int] = []
    for number, name in group:
        for record, photo in _pick(by_category[name], count, numbers):
            caption = f"#{photo} in {number}. {name}" if photo else f"{number}. {name}"
            tiles.append(sheets.Tile(record.path, caption=caption))
            if photo:
                on_sheet.append(photo)
    listed = ", ".join(str(n) for n, _ in group)
    data = _cached_sheet(f"Categories {listed}, a few photos each", tiles)
    if not data:
        return None
    return Attachment(
        ImageInput.from_bytes(data, label=f"categories {listed}"),
        f"an overview sheet of categories {listed}, up to {count} photos each, each photo "
        "captioned with its category's number and name"
        + (" (and #number for the photos the facts name)" if on_sheet else ""),
        on_sheet,
    )


def numbered_attachment(
    project: Project, numbers: Mapping[int, str], budget: Budget = DEFAULT_BUDGET
) -> Attachment | None:
    """One sheet of the photos the facts name by number: findings, mistakes, least sure."""
    tiles, on_sheet = [], []
    for number, rel in sorted(numbers.items())[: budget.results_photos]:
        try:
            record = project.image(rel)
        except DuetmlError:
            continue  # moved or removed since the model was trained
        tiles.append(sheets.Tile(record.path, caption=f"#{number}"))
        on_sheet.append(number)
    if not tiles:
        return None
    data = _cached_sheet("Photos the facts name, by number", tiles)
    if not data:
        return None
    return Attachment(
        ImageInput.from_bytes(data, label="the photos the facts name, by number"),
        "a sheet of the photos the facts name (possible problems, mistakes of the model, "
        "photos it is least sure of), each captioned with its #number",
        on_sheet,
    )


def photos_of(project: Project, category: str) -> list[ImageRecord]:
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
