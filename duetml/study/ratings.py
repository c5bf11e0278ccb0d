"""Blind rating of the final training data: what a rater sees (no participant id, no
condition, an order shuffled per rater) and where their ratings are kept (ratings/<rater>.json).

A rater sees a *code* per participant and task: a keyed hash of the study's seed, so it says
nothing about the participant, and is the same for every rater (ratings can be compared).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duetml import atomic, locks
from duetml.errors import DuetmlError, NotFoundError
from duetml.study.design import Study
from duetml.study.items import EQ
from duetml.study.session import ParticipantSession

RATER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Rated:
    """One participant's final training data of one rated task, as a rater knows it."""

    code: str
    participant: str
    task: str
    project: Path


def check_rater(rater: str) -> str:
    if not RATER_ID.match(rater or ""):
        raise DuetmlError(
            "A rater id is 1 to 32 letters, digits, - or _ (like R1 or anna), "
            f"not {str(rater)[:40]!r}."
        )
    return rater


def blind_code(study: Study, pid: str, tid: str) -> str:
    digest = hashlib.sha256(f"{study.design.seed}:{pid}:{tid}".encode()).hexdigest()
    return f"D{digest[:6].upper()}"


def rated_data(study: Study) -> list[Rated]:
    """Every rated task of every participant who finished it and did not withdraw."""
    found = []
    for p in study.design.participants:
        record = ParticipantSession(study, p.id).record()
        if record.get("withdrawn"):
            continue
        for task in study.design.tasks:
            if task.rated and record["tasks"].get(task.id, {}).get("ended"):
                found.append(
                    Rated(
                        blind_code(study, p.id, task.id),
                        p.id,
                        task.id,
                        study.task_project(p.id, task.id),
                    )
                )
    return found


def queue_for(study: Study, rater: str) -> list[Rated]:
    """The rater's order: shuffled by a seed of their own, so position hides the condition
    and no two raters share an order effect."""
    check_rater(rater)
    items = sorted(rated_data(study), key=lambda r: r.code)
    seed = int(hashlib.sha256(f"{study.design.seed}:{rater}".encode()).hexdigest()[:12], 16)
    random.Random(seed).shuffle(items)
    return items


def find_rated(study: Study, code: str) -> Rated:
    for rated in rated_data(study):
        if rated.code == code:
            return rated
    raise NotFoundError(f"There is no training data {code[:12]!r} to rate.")


def training_data(rated: Rated) -> list[dict[str, Any]]:
    """The final categories and their photos (rel and content hash), as the rater sees them."""
    from duetml.project import Project

    project = Project.open(rated.project, source="study")
    records = project.images("train")
    hashes = project.hashes(records)
    categories: dict[str, list[dict[str, str]]] = {c: [] for c in project.category_names()}
    for r in records:
        if r.rel in hashes:
            categories.setdefault(r.category, []).append({"rel": r.rel, "sha256": hashes[r.rel]})
    return [{"name": name, "photos": photos} for name, photos in categories.items()]


def ratings_path(study: Study, rater: str) -> Path:
    return study.ratings_dir / f"{check_rater(rater)}.json"


def read_ratings(study: Study, rater: str) -> dict[str, Any]:
    path = ratings_path(study, rater)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"rater": rater, "ratings": {}}
    except ValueError:
        raise DuetmlError(f"{path} is not valid JSON: restore it from a backup.") from None
    data.setdefault("ratings", {})
    return data  # type: ignore[no-any-return]


def save_rating(study: Study, rater: str, code: str, answers: Mapping[str, Any]) -> dict[str, Any]:
    """Keep (or replace) one rater's EQ1-EQ5 for one piece of training data."""
    rated = find_rated(study, code)
    clean: dict[str, int] = {}
    for item in EQ.items:
        value = answers.get(item.id)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= item.points:
            raise DuetmlError(f"Rate {item.id} ({item.text}) from 1 to {item.points}.")
        clean[item.id] = value
    unknown = sorted(set(answers) - {i.id for i in EQ.items})
    if unknown:
        raise DuetmlError(f"Raters are asked EQ1 to EQ5 only, not {', '.join(unknown[:5])}.")
    path = ratings_path(study, rater)
    with locks.hold(path.with_suffix(".lock"), 10, "Another save of these ratings is under way."):
        data = read_ratings(study, rater)
        data["ratings"][code] = {
            "participant": rated.participant,
            "task": rated.task,
            "answers": clean,
            "ts": time.time(),
        }
        atomic.write_text(path, json.dumps(data, indent=2) + "\n")
    return data


def all_ratings(study: Study) -> list[dict[str, Any]]:
    """Every rating as a row: rater, participant, task, item, value (withdrawn left out)."""
    withdrawn = {
        p.id
        for p in study.design.participants
        if ParticipantSession(study, p.id).record().get("withdrawn")
    }
    rows = []
    for path in sorted(study.ratings_dir.glob("*.json")):
        rater = path.stem
        if not RATER_ID.match(rater):
            continue
        for entry in read_ratings(study, rater)["ratings"].values():
            if entry["participant"] in withdrawn:
                continue
            for item, value in entry["answers"].items():
                rows.append(
                    {
                        "rater": rater,
                        "participant": entry["participant"],
                        "task": entry["task"],
                        "item": item,
                        "value": value,
                    }
                )
    return rows
