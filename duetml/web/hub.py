"""Telling open pages that something changed: a revision counter any thread can bump.

Training runs in a thread, the proactive agent in another, the folder watcher in a third;
each event-stream connection waits in the event loop. `bump()` wakes every waiting stream
through its own loop (`call_soon_threadsafe`), so no stream needs a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading


class Hub:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.stopping = threading.Event()

    @property
    def revision(self) -> int:
        return self._revision

    def bump(self) -> None:
        with self._lock:
            self._revision += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed; its stream is gone
                pass

    def stop(self) -> None:
        """Ends every event stream at once (a server shutting down must not wait for them)."""
        self.stopping.set()
        self.bump()

    async def wait(self, seen: int, timeout: float) -> int:
        """Return the revision once it differs from ``seen``, or after ``timeout`` seconds."""
        event = asyncio.Event()
        key = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._revision != seen:
                return self._revision
            self._waiters.add(key)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(key)
        return self._revision
