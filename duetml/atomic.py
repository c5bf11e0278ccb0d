"""Crash-safe writes: temp file in the same folder, flush + fsync, then os.replace.

Killing the process at any moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on clean exit it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    _remove_stale_temps(path)


STALE_AFTER_SECONDS = 600


def _remove_stale_temps(path: Path) -> None:
    """Temp files of writes that were killed (SIGKILL, power loss) are never replaced; a later
    write of the same file clears those old enough that no live writer can own them."""
    cutoff = time.time() - STALE_AFTER_SECONDS
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.lstat().st_mtime < cutoff:
                leftover.unlink()


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_many(files: Sequence[tuple[Path, bytes]], workers: int = 8) -> None:
    """Write several files, each crash-safely as `write_bytes` does, for the cost of far fewer
    disk flushes: all go to temp files first, are fsynced together from a few threads (the
    filesystem commits concurrent flushes as one), are renamed into place, and each folder is
    fsynced once. An import of 5,000 photos spent most of its time in one flush after another.
    On an error no temp file is left; files already renamed stay (the caller's journal knows)."""
    if not files:
        return
    pending: list[tuple[int, str, Path]] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            pending.append((fd, tmp_name, path))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        with ThreadPoolExecutor(min(workers, len(pending))) as pool:
            list(pool.map(os.fsync, [fd for fd, _, _ in pending]))
        while pending:
            fd, tmp_name, path = pending[0]
            os.close(fd)
            os.replace(tmp_name, path)
            pending.pop(0)
    finally:
        for fd, tmp_name, _ in pending:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    for folder in {path.parent for path, _ in files}:
        _fsync_dir(folder)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_with(path: Path, writer: Callable[[IO[Any]], None]) -> None:
    """Let ``writer`` fill the file (e.g. ``np.savez``) and commit it atomically."""
    with atomic_open(path, "wb") as handle:
        writer(handle)


def _fsync_dir(folder: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
