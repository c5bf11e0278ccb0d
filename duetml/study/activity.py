"""What each participant did, counted from the event logs of their task projects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from duetml.events import LOG_FILE
from duetml.study.design import Study
from duetml.study.session import ParticipantSession

# Not operations of the participant: the set-up's, a crash's, and `apply_suggestion`, which
# is logged beside the change it made (a proposal's move is one click, one operation).
NOT_OPERATIONS = {"init", "recovered", "predict_live", "apply_suggestion"}


def read_events(project: Path) -> Iterator[dict[str, Any]]:
    path = project / ".duetml" / LOG_FILE
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line after a crash
            if isinstance(event, dict):
                yield event


def session_events(study: Study, pid: str) -> list[dict[str, Any]]:
    """Every event of a participant's tasks, in time order."""
    events = [e for t in study.design.tasks for e in read_events(study.task_project(pid, t.id))]
    return sorted(events, key=lambda e: float(e.get("ts", 0)))


def is_operation(event: dict[str, Any]) -> bool:
    """An action of the participant: not a study step, not the agents' own, not the set-up."""
    name = str(event.get("event", ""))
    return (
        event.get("source") not in ("study",)
        and event.get("by") != "agent"
        and not name.startswith(("study_", "agent_"))
        and name not in NOT_OPERATIONS
    )


def task_activity(study: Study, pid: str, tid: str) -> dict[str, Any]:
    events = list(read_events(study.task_project(pid, tid)))
    asks = [e for e in events if e.get("event") == "agent_ask" and e.get("ok")]
    advice = [
        e for e in events if e.get("event") == "agent_proactive" and e.get("result") == "advice"
    ]
    session = ParticipantSession(study, pid)
    record = session.record()["tasks"].get(tid, {})
    return {
        "participant": pid,
        "task": tid,
        "seconds": round(session.used_seconds(record, session.clock()), 1) if record else None,
        "operations": sum(1 for e in events if is_operation(e)),
        "agent_messages": len(asks) + len(advice),
        "proactive_advice": len(advice),
        "proposals_shown": sum(int(e.get("proposals") or 0) for e in asks + advice),
        "proposals_applied": sum(
            1
            for e in events
            if e.get("event") == "apply_suggestion" and e.get("origin") == "proposal"
        ),
        "questions_chat": sum(1 for e in asks if e.get("about") == "chat"),
        "questions_buttons": sum(1 for e in asks if e.get("about") in ("data", "results")),
    }
