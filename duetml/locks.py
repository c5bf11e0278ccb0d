"""Lock files that serialise writers: two `duetml train`, or the CLI beside the web UI.

Two locks, because training is long and editing is short: a trainer holds `train.lock` for
minutes, while every data or model write holds `data.lock` for a moment, so a person can keep
adding photos while a model trains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from duetml.errors import BusyError


@contextlib.contextmanager
def hold(lock_path: Path, timeout: float, busy_message: str) -> Iterator[None]:
    from filelock import FileLock, Timeout  # here: a cold `duetml predict` takes no lock

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise BusyError(busy_message) from None
    try:
        yield
    finally:
        lock.release()
