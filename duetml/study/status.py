"""Where each participant is: condition, phase, tasks done, questionnaires answered."""

from __future__ import annotations

from typing import Any

from duetml.study.design import Study
from duetml.study.session import ParticipantSession


def study_status(study: Study) -> list[dict[str, Any]]:
    rows = []
    for p in study.design.participants:
        session = ParticipantSession(study, p.id)
        record = session.record()
        done = record["tasks"]
        rows.append(
            {
                "participant": p.id,
                "condition": p.condition,
                "phase": session.phase(record),
                "task": (t.id if (t := session.current_task(record)) else None),
                "tasks_done": sum(1 for t in study.design.tasks if done.get(t.id, {}).get("ended")),
                "tasks": len(study.design.tasks),
                "answered": sum(
                    1 for t in study.design.tasks if done.get(t.id, {}).get("answered")
                ),
                "to_answer": sum(1 for t in study.design.tasks if not t.practice),
                "withdrawn": bool(record.get("withdrawn")),
            }
        )
    return rows
