"""The conversation with both agents, saved in the project so that reopening it continues.

One JSON object per line in `.duetml/conversation.jsonl`. Every save is read-modify-write under
a lock file and committed with an atomic replace, so the CLI and the web UI can both talk to
the same project and a crash leaves the old or the new file, never a torn one.

Small per-project agent state (the proactive agent's last look, which notices were shown)
lives beside it in `.duetml/agents.json`, written the same way.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypedDict, cast, get_args

from duetml import atomic, jsonfile, locks

CONVERSATION_FILE = "conversation.jsonl"
STATE_FILE = "agents.json"
LOCK_FILE = "agents.lock"

Role = Literal["user", "assistant"]
Kind = Literal["greeting", "chat", "ask_data", "ask_results", "proactive", "error"]
ROLES: tuple[Role, ...] = get_args(Role)
KINDS: tuple[Kind, ...] = get_args(Kind)

# A single message longer than this is cut when saved: the file stays readable and loadable.
MAX_MESSAGE_CHARS = 20_000
LOCK_TIMEOUT = 10.0


class _Said(TypedDict):
    id: str
    ts: float
    role: Role
    kind: Kind
    content: str


# A TypedDict, not a Struct: the agents read and pass messages on as the dicts they are on
# disk. The optional key by `total=False`: Python 3.11 reads NotRequired as required under
# `from __future__ import annotations`, and the API's schema would say so.
class Message(_Said, total=False):
    """One saved message, as it is stored (one JSON line) and as the page receives it."""

    proposals: list[dict[str, Any]]  # changes an assistant message proposes


class ConversationStore:
    """Messages oldest first."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / CONVERSATION_FILE
        self.state_path = self.state_dir / STATE_FILE
        self._thread_lock = threading.RLock()
        self._depth = 0

    # --- messages --------------------------------------------------------------------------

    def messages(self) -> list[Message]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        found: list[Message] = []
        for line in text.splitlines():
            entry = jsonfile.loads_or_none(line)  # a damaged line is skipped, not fatal
            if _is_message(entry):
                found.append(entry)
        return found

    def append(self, *entries: tuple[Any, ...]) -> list[Message]:
        """Save (role, kind, content[, extra fields]) messages in one write; returns them with
        id and ts. Extra fields: "proposals" on an assistant message."""
        made: list[Message] = []
        for role, kind, content, *extra in entries:
            message: dict[str, Any] = dict(new_message(role, kind, content))
            for fields in extra:
                message.update({k: v for k, v in fields.items() if k not in message})
            made.append(cast(Message, message))
        with self._locked():
            lines = [json.dumps(m, ensure_ascii=False) for m in self.messages() + made]
            atomic.write_text(self.path, "\n".join(lines) + "\n")
        return made

    def ensure_greeting(self, greeting: str) -> None:
        """The greeting is the first assistant message of a new project, written only once."""
        with self._locked():
            if not self.messages():
                self.append(("assistant", "greeting", greeting))

    # --- small state -----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return jsonfile.read_object(self.state_path)

    def update_state(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        with self._locked():
            data = self.state()
            change(data)
            atomic.write_text(self.state_path, json.dumps(data, ensure_ascii=False, indent=1))
            return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Threads of this process queue on the RLock; other processes on the lock file. The
        # depth counter is only touched by the thread holding the RLock, and lets append()
        # run inside ensure_greeting() without taking the file lock twice.
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            busy = "The conversation is busy (another duetml is saving it): try again."
            with locks.hold(self.state_dir / LOCK_FILE, LOCK_TIMEOUT, busy):
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0


def new_message(role: Role, kind: Kind, content: str) -> Message:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if len(content) > MAX_MESSAGE_CHARS:
        content = content[: MAX_MESSAGE_CHARS - 1] + "…"
    return {
        "id": uuid.uuid4().hex[:12],
        "ts": time.time(),
        "role": role,
        "kind": kind,
        "content": content,
    }


def _is_message(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and entry.get("role") in ROLES
        and entry.get("kind") in KINDS
        and isinstance(entry.get("content"), str)
    )
