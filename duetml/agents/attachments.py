"""The photos attached to an agent request: contact sheets of categories and of results.

One sheet per category with up to 12 evenly spread photos; with more categories than sheets,
overview sheets of a few photos per category; a results sheet of the photos the model gets
wrong or is least sure of. Sheets are cached until a photo on them changes. A text-only model
gets a measured description of the photos instead (`describe_photos`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from duetml.agents import sheets
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.errors import DuetmlError
from duetml.llm import ImageInput

if TYPE_CHECKING:
    from duetml.project import ImageRecord, Project


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


def category_attachments(
    project: Project,
    numbered: Sequence[tuple[int, str]],
    max_sheets: int,
    budget: Budget = DEFAULT_BUDGET,
) -> tuple[list[Attachment], list[int]]:
    """Sheets for categories (number, name); returns them and the numbers left without one."""
    by_category = {name: photos_of(project, name) for _, name in numbered}
    filled = [(n, name) for n, name in numbered if by_category[name]]
    if max_sheets <= 0 or not filled:
        return [], [n for n, _ in filled]
    attachments: list[Attachment] = []
    if len(filled) <= max_sheets:
        for number, name in filled:
            photos = sheets.spread(by_category[name], budget.photos_per_category)
            title = f"Category {number}: {name} ({len(photos)} of {len(by_category[name])} photos)"
            data = _cached_sheet(title, [sheets.Tile(r.path) for r in photos])
            if data:
                attachments.append(
                    Attachment(
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
                Attachment(
                    ImageInput.from_bytes(data, label=f"categories {first} to {last}"),
                    f"an overview sheet of categories {first} to {last}, up to "
                    f"{budget.photos_per_overview_row} photos each, captioned with their numbers",
                )
            )
    return attachments, [n for n, _ in filled if n not in shown]


def results_attachment(project: Project, evaluation: dict[str, Any] | None) -> Attachment | None:
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
    return Attachment(
        ImageInput.from_bytes(data, label="photos the model gets wrong or is unsure of"),
        "a sheet of the photos the model gets wrong or is least sure of, captioned with the "
        "numbers of the list in the facts",
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
