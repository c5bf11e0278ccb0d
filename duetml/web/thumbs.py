"""Thumbnails made once per photo content and kept under `.duetml/cache/thumbs/`.

Keyed by the sha256 of the photo, so moving, renaming or merging categories never makes a
thumbnail again, and a project of thousands of photos sends the page a few KB per photo.
"""

from __future__ import annotations

from pathlib import Path

from duetml import atomic, images

THUMB_SIZE = 192  # pixels on the long side: sharp at the grid's 96 CSS px on a HiDPI screen


class ThumbnailCache:
    def __init__(self, state_dir: Path, size: int = THUMB_SIZE) -> None:
        self.folder = state_dir / "cache" / "thumbs"
        self.size = size

    def path_for(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}-{self.size}.jpg"

    def get(self, digest: str, source: Path) -> bytes:
        """The JPEG thumbnail of ``source`` (whose content hash is ``digest``)."""
        cached = self.path_for(digest)
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            pass
        data = images.thumbnail_jpeg(source, self.size)  # raises BadImageError if undecodable
        atomic.write_bytes(cached, data)
        return data
