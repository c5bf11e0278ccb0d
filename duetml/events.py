"""The interaction log: one JSON line per user operation, for the agents and for studies.

The CLI and the web UI both log through the core, so a study sees one timeline. Each event is
written with a single O_APPEND write, so concurrent writers never interleave inside a line.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from duetml import jsonfile

LOG_FILE = "events.jsonl"
# Fields every event of this project carries (a study's participant and task), if present.
CONTEXT_FILE = "log-context.json"


class InteractionLog:
    def __init__(self, state_dir: Path, source: str = "cli") -> None:
        self.path = state_dir / LOG_FILE
        self.source = source
        # Why events could not be written (a read-only project), so the CLI can say so.
        self.unwritten: str | None = None
        self.context = _read_context(state_dir / CONTEXT_FILE)

    def record(self, event: str, **details: Any) -> dict[str, Any]:
        """Append one event. A log that cannot be written (a read-only project, a full disk)
        never fails what the user asked for: reading must work read-only."""
        entry = {
            "ts": time.time(),
            "source": self.source,
            **self.context,
            "event": event,
            **details,
        }
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a symbolic link planted where the log should be.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            # 0600 like the rest of duetml's state: the log names photos, categories and
            # questions. A log an older duetml made 0644 is tightened on the next write.
            fd = os.open(self.path, flags, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:
                    with contextlib.suppress(OSError):
                        os.fchmod(fd, 0o600)
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            self.unwritten = exc.strerror or str(exc)
        return entry

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        tail: deque[str] = deque(maxlen=limit)
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                tail.append(line)
        events = []
        for line in tail:
            event = jsonfile.loads_or_none(line)
            if isinstance(event, dict):  # a torn last line after a crash is skipped
                events.append(event)
        return events


def _read_context(path: Path) -> dict[str, str]:
    """The fields a study tags this project's events with; none for an ordinary project."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if k in ("participant", "task")}
