"""Contact sheets to judge review findings by eye: PNG grids of photos, each captioned.

    python bench/contact_sheets.py ROOT --review FILE.json [--kind mislabel] [--out DIR]
    python bench/contact_sheets.py ROOT --photos train/hat/a.jpg train/hat/b.jpg [--out DIR]

ROOT is a project (photo ids such as ``train/hat/a.jpg``) or any folder of photos (paths
relative to it, such as the shared Caltech subset). FILE.json is either what
``duetml review --json`` prints (each photo captioned with its finding's number, kind and
message) or a verdict file of bench/judged/ (each photo captioned with its verdict and note).
A photo a file names by path but that is not under ROOT is found by the sha256 of its
content, so a verdict file made on the shared set also draws from a project copied from it.

Prints the PNG paths it wrote. Also importable: `render(items, out_dir, title)` with
`Item(path, caption)`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

TILE = 240  # pixels per photo
COLUMNS = 5
ROWS = 4
CAPTION_LINES = 5
LINE_HEIGHT = 14
CHARS_PER_LINE = 38
GAP = 6
HEADER = 30
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# What a verdict letter means, on the caption (bench/judged/README.md).
VERDICTS = {"C": "right", "D": "debatable", "W": "WRONG"}


@dataclass(frozen=True)
class Item:
    """One photo on a sheet and the words under it."""

    path: Path | None  # None: the photo could not be found (drawn as a grey tile)
    caption: str


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _tile(path: Path | None) -> Image.Image:
    tile = Image.new("RGB", (TILE, TILE), (200, 200, 200))
    if path is None:
        return tile
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except OSError:
        return tile
    image.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    tile.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    return tile


def _caption_lines(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, CHARS_PER_LINE) or [""]
    if len(lines) > CAPTION_LINES:
        lines = lines[:CAPTION_LINES]
        lines[-1] = lines[-1][: CHARS_PER_LINE - 1] + "…"
    return lines


def render(items: Sequence[Item], out_dir: Path, title: str) -> list[Path]:
    """Sheets of COLUMNS x ROWS captioned photos, written as ``title``-N.png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_sheet = COLUMNS * ROWS
    cell_w = TILE + GAP
    cell_h = TILE + CAPTION_LINES * LINE_HEIGHT + GAP * 2
    written: list[Path] = []
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in title)[:60]
    for number, start in enumerate(range(0, len(items), per_sheet), start=1):
        chunk = items[start : start + per_sheet]
        rows = -(-len(chunk) // COLUMNS)
        sheet = Image.new("RGB", (GAP + COLUMNS * cell_w, HEADER + rows * cell_h), (250, 250, 250))
        draw = ImageDraw.Draw(sheet)
        draw.rectangle((0, 0, sheet.width, HEADER - 4), fill=(30, 30, 30))
        pages = -(-len(items) // per_sheet)
        draw.text((8, 6), f"{title} ({number}/{pages})", fill=(255, 255, 255), font=_font(16))
        for index, item in enumerate(chunk):
            x = GAP + (index % COLUMNS) * cell_w
            y = HEADER + (index // COLUMNS) * cell_h
            sheet.paste(_tile(item.path), (x, y))
            for line_no, line in enumerate(_caption_lines(item.caption)):
                draw.text(
                    (x, y + TILE + 2 + line_no * LINE_HEIGHT), line, fill=(0, 0, 0), font=_font(12)
                )
        path = out_dir / f"{slug}-{number}.png"
        sheet.save(path)
        written.append(path)
    return written


# ----- finding the photos ------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PhotoFinder:
    """Photos under ``root`` by relative path, or else by the sha256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._by_hash: dict[str, Path] | None = None

    def by_hash(self) -> dict[str, Path]:
        if self._by_hash is None:
            self._by_hash = {}
            for path in sorted(self.root.rglob("*")):
                if path.suffix.lower() in PHOTO_SUFFIXES and ".duetml" not in path.parts:
                    self._by_hash.setdefault(sha256_of(path), path)
        return self._by_hash

    def find(self, rel: str | None, sha256: str | None = None) -> Path | None:
        if rel:
            direct = self.root / rel
            if direct.is_file() and (not sha256 or sha256_of(direct) == sha256):
                return direct
        if sha256:
            return self.by_hash().get(sha256)
        return None


# ----- the two kinds of file ------------------------------------------------------------------
def review_items(review: dict[str, Any], finder: PhotoFinder, kind: str | None) -> list[Item]:
    """`duetml review --json`: every photo of every finding, captioned F<n>.<m>."""
    items = []
    number = 0
    for finding in review.get("findings", []):
        if kind and finding["kind"] != kind:
            continue
        number += 1
        for index, rel in enumerate(finding.get("photos", []), start=1):
            caption = f"F{number}.{index} {finding['kind']} ({finding['score']:.2f})\n{rel}\n"
            items.append(Item(finder.find(rel), caption + finding["message"]))
    return items


def judged_items(judged: dict[str, Any], finder: PhotoFinder, kind: str | None) -> list[Item]:
    """A verdict file of bench/judged/: every judged photo, captioned with verdict and note."""
    items = []
    for section, entries in judged.items():
        if section == "about" or not isinstance(entries, list) or (kind and section != kind):
            continue
        for entry in entries:
            photos = entry.get("photos") or ([entry] if "sha256" in entry else [])
            verdict = entry.get("verdict", "?")
            head = f"{section} {verdict} ({VERDICTS.get(verdict, 'missed')})"
            if entry.get("suggested"):
                head += f" -> {entry['suggested']} ok={entry.get('suggestion_ok', '?')}"
            for photo in photos:
                where = photo.get("photo") or photo.get("rel") or ""
                path = finder.find(where, photo.get("sha256"))
                items.append(Item(path, f"{head}\n{where}\n{entry.get('note', '')}"))
    return items


def photo_items(photos: Iterable[str], finder: PhotoFinder) -> list[Item]:
    return [Item(finder.find(rel), rel) for rel in photos]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a project, or a folder of photos")
    parser.add_argument("--review", type=Path, help="duetml review --json output or a verdict file")
    parser.add_argument("--photos", nargs="*", default=[], help="photo paths under ROOT")
    parser.add_argument("--kind", help="only this kind (mislabel, near_duplicate, ...)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/contact-sheets"))
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    finder = PhotoFinder(args.root)
    if args.review:
        data = json.loads(args.review.read_text("utf-8"))
        items = (
            review_items(data, finder, args.kind)
            if "findings" in data
            else judged_items(data, finder, args.kind)
        )
        title = args.title or f"{args.review.stem}-{args.kind or 'all'}"
    elif args.photos:
        items = photo_items(args.photos, finder)
        title = args.title or "photos"
    else:
        sys.exit("Name a review file (--review FILE.json) or photos (--photos P ...).")
    if not items:
        sys.exit("Nothing to draw: no photo matched.")
    missing = sum(item.path is None for item in items)
    for path in render(items, args.out, title):
        print(path)
    if missing:
        print(f"({missing} photo(s) not found under {args.root}: drawn grey)", file=sys.stderr)


if __name__ == "__main__":
    main()
