"""A participant's session as a timeline: every event of their tasks, in time order."""

from __future__ import annotations

import datetime as dt
from typing import Any

from duetml.study.activity import is_operation, session_events
from duetml.study.design import Study

# Fields that say nothing a reader of the timeline needs.
_QUIET = {"ts", "source", "event", "participant", "task", "by", "provider", "model"}


def timeline(study: Study, pid: str) -> list[dict[str, Any]]:
    """Each event with its offset from the session's first event, its task and a summary."""
    study.participant_dir(pid)  # a clear error for an unknown id
    events = session_events(study, pid)
    events = [e for e in events if e.get("event") != "init"]  # made by `study init`, not them
    start = float(events[0]["ts"]) if events else 0.0
    return [
        {
            "t": round(float(e.get("ts", 0)) - start, 1),
            "time": dt.datetime.fromtimestamp(float(e.get("ts", 0)), dt.UTC).strftime("%H:%M:%S"),
            "task": e.get("task", "?"),
            "event": e.get("event", "?"),
            "who": "agent"
            if e.get("by") == "agent" or str(e.get("event", "")).startswith("agent_")
            else ("study" if e.get("source") == "study" else "participant"),
            "operation": is_operation(e),
            "details": {k: v for k, v in e.items() if k not in _QUIET},
        }
        for e in events
    ]


def format_line(entry: dict[str, Any], width: int = 100) -> str:
    minutes, seconds = divmod(int(entry["t"]), 60)
    details = ", ".join(f"{k}={_short(v)}" for k, v in entry["details"].items())
    line = (
        f"+{minutes:02d}:{seconds:02d}  {entry['task']:<12} {entry['who']:<11} "
        f"{entry['event']:<22} {details}"
    )
    return line if len(line) <= width else line[: width - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in list(value.items())[:6]) + "}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"
