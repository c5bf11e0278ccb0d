"""Contact sheets: many photos in one labelled JPEG, so a model sees a category at a glance.

Many local vision models handle one image per message far better than twenty, and one sheet
costs a fraction of the tokens of its photos sent one by one. Every sheet is bounded in pixels
(`SHEET_MAX_SIDE`) and bytes (`SHEET_MAX_BYTES`): JPEG quality steps down, then the sheet
shrinks, until it fits.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from duetml.errors import BadImageError

if TYPE_CHECKING:
    from PIL import Image, ImageFont

T = TypeVar("T")

SHEET_MAX_SIDE = 1024  # pixels, width and height
SHEET_MAX_BYTES = 160_000
TILE = 176  # pixels per photo on a sheet
COLUMNS = 4
GAP = 4
HEADER = 34
CAPTION = 20
MAX_TITLE_CHARS = 60
_QUALITIES = (80, 68, 55, 42)
_BACKGROUND = (236, 236, 236)
_HEADER_COLOUR = (32, 32, 32)


@dataclass(frozen=True)
class Tile:
    """One photo on a sheet, with an optional short caption drawn under it (e.g. "3")."""

    path: Path
    caption: str = ""


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: a fixed bitmap font
        return ImageFont.load_default()


def _fit(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _photo(path: Path) -> Image.Image | None:
    from PIL import Image

    from duetml.images import load_rgb

    try:
        image = load_rgb(path, max_side=TILE * 2)
    except (BadImageError, OSError):
        return None  # an unreadable photo leaves a gap, it does not sink the sheet
    image.thumbnail((TILE, TILE), Image.Resampling.BILINEAR)
    return image


def draw_sheet(title: str, tiles: Sequence[Tile]) -> bytes | None:
    """A JPEG grid of `tiles` under a header line; None when no photo could be read."""
    from PIL import Image, ImageDraw

    photos: list[tuple[Tile, Image.Image]] = []
    for tile in tiles:
        image = _photo(tile.path)
        if image is not None:
            photos.append((tile, image))
    if not photos:
        return None
    captioned = any(tile.caption for tile, _ in photos)
    cell_h = TILE + (CAPTION if captioned else 0)
    columns = min(COLUMNS, len(photos))
    rows = -(-len(photos) // columns)
    width = GAP + columns * (TILE + GAP)
    height = HEADER + GAP + rows * (cell_h + GAP)
    sheet = Image.new("RGB", (max(width, 360), height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.rectangle((0, 0, sheet.width, HEADER - 1), fill=_HEADER_COLOUR)
    draw.text((8, 7), _fit(title, MAX_TITLE_CHARS), fill=(255, 255, 255), font=_font(18))
    for index, (tile, image) in enumerate(photos):
        x = GAP + (index % columns) * (TILE + GAP)
        y = HEADER + GAP + (index // columns) * (cell_h + GAP)
        sheet.paste(image, (x + (TILE - image.width) // 2, y + (TILE - image.height) // 2))
        if tile.caption:
            draw.text((x + 2, y + TILE + 2), _fit(tile.caption, 24), fill=(0, 0, 0), font=_font(14))
    return encode_bounded(sheet)


def encode_bounded(image: Image.Image) -> bytes:
    """JPEG bytes within SHEET_MAX_SIDE and SHEET_MAX_BYTES, however busy the picture."""
    from PIL import Image

    image = image.copy()
    image.thumbnail((SHEET_MAX_SIDE, SHEET_MAX_SIDE), Image.Resampling.BILINEAR)
    while True:
        for quality in _QUALITIES:
            out = io.BytesIO()
            image.save(out, "JPEG", quality=quality, optimize=True)
            if out.tell() <= SHEET_MAX_BYTES:
                return out.getvalue()
        image = image.resize(
            (max(image.width * 3 // 4, 1), max(image.height * 3 // 4, 1)),
            Image.Resampling.BILINEAR,
        )


def spread(items: Sequence[T], count: int) -> list[T]:
    """`count` items evenly spread over `items` (all of them when there are fewer; none for a
    count of zero or less, as when flagged photos already fill a sheet)."""
    if count <= 0:
        return []
    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]
