"""Thumbnails made once per photo content and kept under `.duetml/cache/thumbs/`.

Keyed by the sha256 of the photo, so moving, renaming or merging categories never makes a
thumbnail again, and a project of thousands of photos sends the page a few KB per photo.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from duetml import atomic, images
from duetml.errors import InvalidNameError
from duetml.names import resolve_inside

THUMB_SIZE = 192  # pixels on the long side: sharp at the grid's 96 CSS px on a HiDPI screen
# The page asks for dozens of thumbnails at once; decoding is bounded per image (by the
# output size, plus the decoded pixels of formats that cannot be decoded at reduced scale),
# and this bounds how many images are decoded at the same time. Decoding runs on these few
# threads of its own, not on the server's many: the C allocator keeps memory per thread, so
# a big PNG decoded on each of forty threads would stay resident forty times
# (bench/bench_image_memory.py).
MAX_CONCURRENT_DECODES = 2


class ThumbnailCache:
    def __init__(self, state_dir: Path, size: int = THUMB_SIZE) -> None:
        self.state_dir = state_dir
        self.folder = state_dir / "cache" / "thumbs"
        self.size = size
        self._decoders = ThreadPoolExecutor(MAX_CONCURRENT_DECODES, "duetml-thumbnail")

    def path_for(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}-{self.size}.jpg"

    def get(self, digest: str, source: Path) -> bytes:
        """The JPEG thumbnail of ``source`` (whose content hash is ``digest``).

        The cache is read and written only through real folders: a symbolic link planted in
        it (security.md) is refused, never followed. A read-only project still gets its
        thumbnails, made afresh each time.
        """
        # Raises InvalidNameError if any part of the way is a symbolic link.
        cached = resolve_inside(
            self.state_dir, self.path_for(digest).relative_to(self.state_dir).as_posix()
        )
        try:
            fd = os.open(cached, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link after the check above
                raise InvalidNameError(
                    "That thumbnail is a symbolic link, which duetml never follows."
                ) from None
        else:
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                # Only a file this cache made: a hard link planted here (another name of any
                # file of this user's, ~/.ssh/id_rsa included) is never served; the thumbnail
                # is made again and its atomic write replaces the link, not the file.
                if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    return handle.read()
        # BadImageError (undecodable) comes back through result().
        data = self._decoders.submit(images.thumbnail_jpeg, source, self.size).result()
        with contextlib.suppress(OSError):  # read-only project: serve it uncached
            atomic.write_bytes(cached, data)
        return data
