"""Reading JSON that duetml wrote but anyone could have changed since: caches, approvals, logs.

A file of the wrong type (`[]`, `"x"`, `1e999`, `null` where an object belongs) or nested
100,000 levels deep (RecursionError, which is not a ValueError) is read as absent, never as
an error: a cache is computed again, an approval asked again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def loads_or_none(text: str | bytes) -> Any:
    """The parsed value, or None when it is not JSON (too deep included)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are both
        return None


def read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file is missing, unreadable, not JSON, or
    JSON of another type."""
    try:
        text = path.read_bytes()
    except OSError:
        return {}
    value = loads_or_none(text)
    return value if isinstance(value, dict) else {}


def dumps(value: Any) -> str:
    """JSON as duetml writes its small files: indented, UTF-8 kept, one final newline."""
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def plain(value: Any) -> Any:
    """A payload (a msgspec Struct, or anything holding them) as its JSON reads back: dicts,
    lists (never tuples), strings and numbers, for code that handles it as such."""
    import msgspec

    return msgspec.json.decode(msgspec.json.encode(value))
