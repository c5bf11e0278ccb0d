"""One participant's session: consent, then each task (timed, pausable), then its
questionnaires; or withdrawal at any point. Kept in `participants/P07/session.json`, written
atomically under a lock, so the page, the experimenter's CLI and a crash never lose an answer.

Every step is also an event (`study_*`) in the log of the task's project, so a replay of the
log alone shows when a task started, paused, ended and was answered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from duetml import atomic, locks
from duetml.errors import DuetmlError
from duetml.events import InteractionLog
from duetml.study.design import Study, Task
from duetml.study.items import Questionnaire, questionnaires_for

SESSION_FILE = "session.json"
LOCK_TIMEOUT = 10.0

# The phases a session goes through, in order (a task's phases repeat per task).
CONSENT, READY, RUNNING, PAUSED, QUESTIONNAIRE, DONE, WITHDRAWN = (
    "consent",
    "ready",
    "running",
    "paused",
    "questionnaire",
    "done",
    "withdrawn",
)


class ParticipantSession:
    def __init__(self, study: Study, pid: str, clock: Callable[[], float] = time.time) -> None:
        self.study = study
        self.participant = study.design.participant(pid)
        self.folder = study.participant_dir(pid)
        self.path = self.folder / SESSION_FILE
        self.clock = clock

    @property
    def condition(self) -> str:
        return self.participant.condition

    # ----- reading ---------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """The saved session (an empty one before consent)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"participant": self.participant.id, "tasks": {}}
        except ValueError:
            raise DuetmlError(
                f"{self.path} is not valid JSON: restore it from a backup, or delete it "
                "to start this participant's session again."
            ) from None
        if not isinstance(data, dict):
            raise DuetmlError(f"{self.path} is not a session file: restore it from a backup.")
        data.setdefault("tasks", {})
        return data

    def current_task(self, record: Mapping[str, Any] | None = None) -> Task | None:
        """The task the participant is on (or last finished): None before consent or when done."""
        record = self.record() if record is None else record
        for task in self.study.design.tasks:
            done = record["tasks"].get(task.id, {})
            if not done.get("ended") or (not task.practice and not done.get("answered")):
                return task
        return None

    def phase(self, record: Mapping[str, Any]) -> str:
        if record.get("withdrawn"):
            return WITHDRAWN
        if not record.get("consented"):
            return CONSENT
        task = self.current_task(record)
        if task is None:
            return DONE
        done = record["tasks"].get(task.id, {})
        if not done.get("started"):
            return READY
        if not done.get("ended"):
            return PAUSED if done.get("paused_at") else RUNNING
        return QUESTIONNAIRE

    def used_seconds(self, task_record: Mapping[str, Any], now: float) -> float:
        """Seconds worked on a task: from its start, less the pauses."""
        if not task_record.get("started"):
            return 0.0
        end = float(task_record.get("ended") or task_record.get("paused_at") or now)
        paused = float(task_record.get("paused_s", 0.0))
        return max(0.0, end - float(task_record["started"]) - paused)

    def state(self) -> dict[str, Any]:
        """What the session page shows; ends a task whose time is up first."""
        self._end_if_time_is_up()
        record = self.record()
        phase = self.phase(record)
        task = self.current_task(record)
        now = self.clock()
        shown: dict[str, Any] = {
            "participant": self.participant.id,
            "phase": phase,
            "tasks": [
                {"id": t.id, "title": t.title, "minutes": t.minutes, "practice": t.practice}
                for t in self.study.design.tasks
            ],
            "task": None,
            "questionnaires": [],
        }
        if phase == CONSENT:
            shown["consent"] = self.study.consent_text()
        if task is not None and phase not in (CONSENT, WITHDRAWN):
            done = record["tasks"].get(task.id, {})
            used = self.used_seconds(done, now)
            shown["task"] = {
                "id": task.id,
                "title": task.title,
                "text": task.text,
                "minutes": task.minutes,
                "practice": task.practice,
                "remaining_s": max(0.0, task.minutes * 60 - used),
                "used_s": used,
            }
        if phase == QUESTIONNAIRE:
            shown["questionnaires"] = [
                _questionnaire_dict(q) for q in questionnaires_for(self.condition)
            ]
        return shown

    # ----- changing --------------------------------------------------------------------------
    def consent(self) -> dict[str, Any]:
        def change(record: dict[str, Any], now: float) -> str:
            if record.get("consented"):
                return ""
            record["consented"] = now
            return "study_consent"

        return self._change(change, CONSENT)

    def start(self) -> dict[str, Any]:
        def change(record: dict[str, Any], now: float) -> str:
            task = self._task_in(record, READY)
            record["tasks"][task.id] = {"started": now, "paused_s": 0.0}
            return "study_task_started"

        return self._change(change, READY)

    def pause(self) -> dict[str, Any]:
        def change(record: dict[str, Any], now: float) -> str:
            done = record["tasks"][self._task_in(record, RUNNING).id]
            done["paused_at"] = now
            return "study_paused"

        return self._change(change, RUNNING)

    def resume(self) -> dict[str, Any]:
        def change(record: dict[str, Any], now: float) -> str:
            done = record["tasks"][self._task_in(record, PAUSED).id]
            done["paused_s"] = done.get("paused_s", 0.0) + now - done.pop("paused_at")
            return "study_resumed"

        return self._change(change, PAUSED)

    def finish(self, by: str = "participant") -> dict[str, Any]:
        """End the current task before its time is up (the participant says they are done)."""

        def change(record: dict[str, Any], now: float) -> str:
            done = record["tasks"][self._task_in(record, RUNNING, PAUSED).id]
            self._close(done, now, by)
            return "study_task_ended"

        return self._change(change, RUNNING, PAUSED, details={"ended_by": by})

    def answer(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Save the questionnaires of the task just ended: every item, each on its scale."""
        expected = {i.id: i for q in questionnaires_for(self.condition) for i in q.items}
        clean: dict[str, int] = {}
        for item_id, item in expected.items():
            value = answers.get(item_id)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DuetmlError(
                    f"Answer {item_id} ({item.text}) with a number from 1 to {item.points}."
                )
            if not 1 <= value <= item.points:
                raise DuetmlError(f"{item_id} is answered from 1 to {item.points}, not {value}.")
            clean[item_id] = value
        unknown = sorted(set(answers) - set(expected))
        if unknown:
            raise DuetmlError(f"This participant is not asked {', '.join(unknown[:5])}.")

        def change(record: dict[str, Any], now: float) -> str:
            done = record["tasks"][self._task_in(record, QUESTIONNAIRE).id]
            done["answers"] = clean
            done["answered"] = now
            return "study_answers"

        return self._change(change, QUESTIONNAIRE, details={"answers": clean})

    def withdraw(self) -> dict[str, Any]:
        """The participant stops: their data is left out of the report and the export."""

        def change(record: dict[str, Any], now: float) -> str:
            record["withdrawn"] = now
            task = self.current_task(record)
            if task is not None:
                done = record["tasks"].get(task.id)
                if done and done.get("started") and not done.get("ended"):
                    self._close(done, now, "withdrawn")
            return "study_withdrawn"

        return self._change(change, CONSENT, READY, RUNNING, PAUSED, QUESTIONNAIRE, DONE)

    # ----- the machinery ---------------------------------------------------------------------
    def _close(self, done: dict[str, Any], now: float, by: str) -> None:
        if done.get("paused_at"):
            done["paused_s"] = done.get("paused_s", 0.0) + now - done.pop("paused_at")
        done["ended"] = now
        done["ended_by"] = by

    def _task_in(self, record: Mapping[str, Any], *phases: str) -> Task:
        task = self.current_task(record)
        assert task is not None and self.phase(record) in phases  # checked by _change
        return task

    def _end_if_time_is_up(self) -> None:
        record = self.record()
        if self.phase(record) != RUNNING:
            return
        task = self.current_task(record)
        assert task is not None
        done = record["tasks"][task.id]
        if self.used_seconds(done, self.clock()) < task.minutes * 60:
            return

        def change(record: dict[str, Any], now: float) -> str:
            done = record["tasks"][self._task_in(record, RUNNING).id]
            # The task ended when its time ran out, not when someone next looked.
            self._close(
                done, done["started"] + done.get("paused_s", 0.0) + task.minutes * 60, "time"
            )
            return "study_task_ended"

        # The event is written now; `seconds` says how long the task really ran.
        self._change(change, RUNNING, details={"ended_by": "time", "seconds": task.minutes * 60})

    def _change(
        self,
        change: Callable[[dict[str, Any], float], str],
        *allowed: str,
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        with locks.hold(
            self.folder / "session.lock",
            LOCK_TIMEOUT,
            "Another duetml is changing this participant's session: try again in a moment.",
        ):
            record = self.record()
            phase = self.phase(record)
            if phase not in allowed:
                raise DuetmlError(_NOT_NOW.get(phase, f"The session is {phase}: not now."))
            task = self.current_task(record)
            now = self.clock()
            event = change(record, now)
            if event:
                record["participant"] = self.participant.id
                atomic.write_text(self.path, json.dumps(record, indent=2) + "\n")
        if event:
            where = task or self.study.design.tasks[0]
            log = InteractionLog(
                self.study.task_project(self.participant.id, where.id) / ".duetml", source="study"
            )
            log.record(event, **(details or {}))
        return self.state()


_NOT_NOW = {
    CONSENT: "The participant has not agreed to take part yet: show the consent first.",
    READY: "The task has not started yet: press Start.",
    RUNNING: "The task is running.",
    PAUSED: "The task is paused: resume it first.",
    QUESTIONNAIRE: "The task has ended: answer the questions first.",
    DONE: "The session is over: every task is done.",
    WITHDRAWN: "The participant has withdrawn: the session is closed.",
}


def _questionnaire_dict(q: Questionnaire) -> dict[str, Any]:
    return {
        "id": q.id,
        "title": q.title,
        "source": q.source,
        "items": [
            {"id": i.id, "text": i.text, "points": i.points, "low": i.low, "high": i.high}
            for i in q.items
        ],
    }


def session_path(folder: Path) -> Path:
    return folder / SESSION_FILE
