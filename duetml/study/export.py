"""An anonymised package of a study, for sharing and for R or pandas.

    OUT/
      study.json            conditions, tasks, items (with sources); no seed (it unblinds codes)
      data.csv              long format: participant, condition, task, source, rater, item, value
      participants/P01/<task>/categories.json   the final categories and their thumbnails
      participants/P01/<task>/thumbs/...        thumbnails named by content, not file name
      participants/P01/<task>/events.jsonl      the log: seconds from the session's start,
                                                 photo names and paths left out
      participants/P01/answers.json             the questionnaires, per task

Withdrawn participants are left out entirely, their ratings too. The package is written
beside OUT and renamed into place, so OUT is either complete or absent.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

from duetml import atomic
from duetml.errors import AlreadyExistsError
from duetml.study.activity import read_events, session_events, task_activity
from duetml.study.design import Participant, Study
from duetml.study.items import EQ, UMUX, UQ
from duetml.study.ratings import all_ratings
from duetml.study.report import participant_answers

CSV_FIELDS = ("participant", "condition", "task", "source", "rater", "item", "value")
ACTIVITY_MEASURES = (
    "seconds",
    "operations",
    "agent_messages",
    "proactive_advice",
    "proposals_shown",
    "proposals_applied",
    "questions_chat",
    "questions_buttons",
)


def anonymise(event: dict[str, Any], start: float) -> dict[str, Any]:
    """The event with its time as seconds from the start, and no file names or paths:
    lists of names become their length, a text that looks like a path becomes "[path]"."""
    clean: dict[str, Any] = {"t": round(float(event.get("ts", start)) - start, 2)}
    for key, value in event.items():
        if key == "ts":
            continue
        if isinstance(value, list):
            clean[key] = len(value)
        elif isinstance(value, str) and ("/" in value or "\\" in value) and key != "event":
            clean[key] = "[path]"
        else:
            clean[key] = value
    return clean


def export_study(study: Study, out: Path) -> dict[str, Any]:
    """The study as a folder to share: `data.csv` (answers, ratings and activity, a row
    each), `study.json` (the design without its seed), and per participant and task the
    categories as thumbnails and the anonymised log. Written whole or not at all."""
    out = Path(out)
    if out.exists():
        raise AlreadyExistsError(f"{out} exists: choose a new folder for the export.")
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    answers, withdrawn = participant_answers(study)
    included = [p for p in study.design.participants if p.id not in withdrawn]
    rows: list[dict[str, Any]] = [{**a, "source": "participant", "rater": ""} for a in answers]
    condition_of = {p.id: p.condition for p in study.design.participants}
    for rating in all_ratings(study):
        rows.append({**rating, "condition": condition_of[rating["participant"]], "source": "rater"})
    photos = 0
    for p in included:
        folder = work / "participants" / p.id
        events = session_events(study, p.id)
        start = float(events[0]["ts"]) if events else 0.0
        for task in study.design.tasks:
            photos += _export_task(study, p, task.id, folder / task.id, start, rows)
        mine = [a for a in answers if a["participant"] == p.id]
        per_task: dict[str, dict[str, int]] = {}
        for a in mine:
            per_task.setdefault(a["task"], {})[a["item"]] = a["value"]
        atomic.write_text(folder / "answers.json", json.dumps(per_task, indent=2))
    _write_design(study, included, work)
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(work / "data.csv", text.getvalue())
    os.replace(work, out)
    return {
        "out": str(out),
        "participants": len(included),
        "withdrawn": withdrawn,
        "rows": len(rows),
        "photos": photos,
    }


def _export_task(
    study: Study, p: Participant, task: str, target: Path, start: float, rows: list[dict[str, Any]]
) -> int:
    """One task of one participant into `target`: its categories as thumbnails (named by
    content) and its anonymised log; its activity measures are added to `rows`. Returns the
    number of photos written."""
    from duetml.project import Project
    from duetml.web.thumbs import ThumbnailCache

    photos = 0
    project = Project.open(study.task_project(p.id, task), source="study")
    (target / "thumbs").mkdir(parents=True)
    thumbs = ThumbnailCache(project.state_dir)
    records = project.images("train")
    hashes = project.hashes(records)
    categories = []
    for index, name in enumerate(project.category_names()):
        shown = []
        for r in records:
            if r.category != name or r.rel not in hashes:
                continue
            file = f"thumbs/{index:02d}/{hashes[r.rel][:16]}.jpg"
            atomic.write_bytes(target / file, thumbs.get(hashes[r.rel], r.path))
            shown.append(file)
        categories.append({"name": name, "photos": shown})
        photos += len(shown)
    atomic.write_text(target / "categories.json", json.dumps(categories, indent=2))
    log = "".join(
        json.dumps(anonymise(e, start), ensure_ascii=False) + "\n"
        for e in read_events(project.root)
    )
    atomic.write_text(target / "events.jsonl", log)
    activity = task_activity(study, p.id, task)
    for measure in ACTIVITY_MEASURES:
        if activity[measure] is not None:
            rows.append(
                {
                    "participant": p.id,
                    "condition": p.condition,
                    "task": task,
                    "source": "log",
                    "rater": "",
                    "item": measure,
                    "value": activity[measure],
                }
            )
    return photos


def _write_design(study: Study, included: list[Participant], work: Path) -> None:
    """`study.json`: the design (without its seed), the participants kept, the questionnaires."""
    design = study.design.as_dict()
    design.pop("seed")
    design["participants"] = [{"id": p.id, "condition": p.condition} for p in included]
    design["items"] = {
        q.id: {"source": q.source, "items": {i.id: i.text for i in q.items}} for q in (UQ, UMUX, EQ)
    }
    atomic.write_text(work / "study.json", json.dumps(design, indent=2))
