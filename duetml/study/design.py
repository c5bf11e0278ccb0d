"""A study folder: the design (participants, conditions, tasks, consent) and where things live.

    study/
      study.json                  the design, written once by `duetml study init` (atomic)
      consent.md                  shown before the session
      tasks/<task>.toml           the task texts, copied
      participants/P01/session.json   the participant's progress and answers (atomic)
      participants/P01/<task>/    one duetml project per task: its own photos, model,
                                  conversation, undo history and event log
      ratings/<rater>.json        the blind ratings of one rater

A project per task (not one per participant) because the paper's tasks use different photos:
each task starts empty, and its final training data, model and conversation stay its own.
"""

from __future__ import annotations

import json
import random
import re
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from duetml import atomic
from duetml.errors import AlreadyExistsError, DuetmlError, NotFoundError

STUDY_FILE = "study.json"
CONSENT_FILE = "consent.md"
FORMAT = 1
CONDITIONS = ("agents", "baseline")
SHIPPED_TASKS = Path(__file__).parent / "tasks"
DEFAULT_TASKS = ("practice.toml", "free.toml", "requirement.toml")
PARTICIPANT_ID = re.compile(r"^P[0-9]{2,4}$")
TASK_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_PARTICIPANTS = 999


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    minutes: float
    text: str
    practice: bool = False
    rated: bool = False


@dataclass(frozen=True)
class Participant:
    id: str
    condition: str


@dataclass(frozen=True)
class StudyDesign:
    seed: int
    conditions: tuple[str, ...]
    participants: tuple[Participant, ...]
    tasks: tuple[Task, ...]
    created: float = field(default_factory=time.time)
    format: int = FORMAT

    def participant(self, pid: str) -> Participant:
        for p in self.participants:
            if p.id == pid:
                return p
        known = ", ".join(p.id for p in self.participants[:5])
        raise NotFoundError(f"There is no participant {pid!r} in this study (it has {known}...).")

    def task(self, tid: str) -> Task:
        for t in self.tasks:
            if t.id == tid:
                return t
        raise NotFoundError(f"There is no task {tid!r} in this study.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_task_file(path: Path) -> Task:
    """A task file (TOML: title, minutes, text, optional practice and rated), checked."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DuetmlError(f"Cannot read the task file {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise DuetmlError(f"The task file {path} is not valid TOML ({exc}): fix it.") from None
    missing = [k for k in ("title", "minutes", "text") if k not in data]
    if missing:
        raise DuetmlError(
            f"The task file {path} lacks {', '.join(missing)}: give title, minutes and text "
            f"(see {SHIPPED_TASKS / 'free.toml'})."
        )
    minutes = data["minutes"]
    if not isinstance(minutes, (int, float)) or not 0 < minutes <= 240:
        raise DuetmlError(f"In {path}, minutes must be a number from 0 to 240, not {minutes!r}.")
    tid = Path(path).stem.lower()
    if not TASK_ID.match(tid):
        raise DuetmlError(
            f"Name the task file with letters, digits, - or _ (like task1.toml), not {path.name!r}."
        )
    return Task(
        id=tid,
        title=str(data["title"]).strip()[:200],
        minutes=float(minutes),
        text=str(data["text"]).strip()[:10_000],
        practice=bool(data.get("practice", False)),
        rated=bool(data.get("rated", False)),
    )


def balanced_conditions(count: int, conditions: tuple[str, ...], seed: int) -> list[str]:
    """Each condition as often as the others (±1), in an order shuffled by ``seed``.

    Block randomisation: the leftover slots (count not divisible) go to conditions drawn
    without replacement, so no condition is favoured by its position in the list.
    """
    rng = random.Random(seed)
    per, extra = divmod(count, len(conditions))
    slots = [c for c in conditions for _ in range(per)]
    slots += rng.sample(list(conditions), extra)
    rng.shuffle(slots)
    return slots


class Study:
    """An open study folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.design = self._read()

    @classmethod
    def open(cls, root: Path | str) -> Study:
        if not (Path(root) / STUDY_FILE).is_file():
            raise NotFoundError(
                f"{root} is not a duetml study (no {STUDY_FILE}): make one with "
                "`duetml study init DIR --participants N`.",
                web="This folder is not a duetml study: the experimenter makes one first.",
            )
        return cls(Path(root))

    def _read(self) -> StudyDesign:
        raw = json.loads((self.root / STUDY_FILE).read_text(encoding="utf-8"))
        return StudyDesign(
            seed=int(raw["seed"]),
            conditions=tuple(raw["conditions"]),
            participants=tuple(Participant(**p) for p in raw["participants"]),
            tasks=tuple(Task(**t) for t in raw["tasks"]),
            created=float(raw["created"]),
            format=int(raw.get("format", FORMAT)),
        )

    # ----- where things are (every path checked to stay inside the study) ------------------
    def participant_dir(self, pid: str) -> Path:
        if not PARTICIPANT_ID.match(pid):
            raise DuetmlError(f"A participant id looks like P07, not {pid[:20]!r}.")
        self.design.participant(pid)  # only ids of this study
        path = (self.root / "participants" / pid).resolve()
        if path.parent != (self.root / "participants").resolve():
            raise DuetmlError(f"{pid} does not lead inside this study's participants folder.")
        return path

    def task_project(self, pid: str, tid: str) -> Path:
        self.design.task(tid)
        return self.participant_dir(pid) / tid

    def consent_text(self) -> str:
        path = self.root / CONSENT_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    @property
    def ratings_dir(self) -> Path:
        return self.root / "ratings"


def init_study(
    root: Path | str,
    participants: int,
    conditions: tuple[str, ...] = CONDITIONS,
    seed: int | None = None,
    task_files: list[Path] | None = None,
    consent: Path | None = None,
) -> Study:
    """Make a study folder: the design, the consent text, the tasks, a project per task."""
    from duetml.project import Project

    root = Path(root)
    if (root / STUDY_FILE).exists():
        raise AlreadyExistsError(f"{root} is already a study: choose another folder.")
    if root.exists() and any(root.iterdir()):
        raise DuetmlError(f"{root} is not empty: choose an empty or new folder for the study.")
    if not 1 <= participants <= MAX_PARTICIPANTS:
        raise DuetmlError(f"Give from 1 to {MAX_PARTICIPANTS} participants, not {participants}.")
    conditions = tuple(dict.fromkeys(c.strip() for c in conditions if c.strip()))
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or len(conditions) < 2:
        raise DuetmlError(
            f"Conditions are two of {', '.join(CONDITIONS)} (--conditions agents,baseline), "
            f"not {','.join(conditions) or 'none'}."
        )
    tasks = [read_task_file(p) for p in (task_files or [SHIPPED_TASKS / n for n in DEFAULT_TASKS])]
    if len({t.id for t in tasks}) != len(tasks):
        raise DuetmlError("Two task files have the same name: give each task its own file name.")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    width = max(2, len(str(participants)))
    assigned = balanced_conditions(participants, conditions, seed)
    design = StudyDesign(
        seed=seed,
        conditions=conditions,
        participants=tuple(
            Participant(f"P{n:0{width}d}", c) for n, c in enumerate(assigned, start=1)
        ),
        tasks=tuple(tasks),
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "tasks").mkdir()
    for task, source in zip(
        tasks, task_files or [SHIPPED_TASKS / n for n in DEFAULT_TASKS], strict=True
    ):
        atomic.write_bytes(root / "tasks" / f"{task.id}.toml", Path(source).read_bytes())
    consent_text = (consent or Path(__file__).parent / CONSENT_FILE).read_text(encoding="utf-8")
    atomic.write_text(root / CONSENT_FILE, consent_text)
    for p in design.participants:
        for task in tasks:
            project, _ = Project.init(root / "participants" / p.id / task.id, goal="")
            tag_project(project.state_dir, {"participant": p.id, "task": task.id})
    (root / "ratings").mkdir()
    # Last: a folder without study.json is not a study, whatever else it holds.
    atomic.write_text(root / STUDY_FILE, json.dumps(design.as_dict(), indent=2) + "\n")
    return Study(root)


def tag_project(state_dir: Path, context: dict[str, str]) -> None:
    """Make every event of the project carry ``context`` (its participant and task), the
    `init` event already written included."""
    from duetml.events import CONTEXT_FILE, LOG_FILE

    atomic.write_text(state_dir / CONTEXT_FILE, json.dumps(context) + "\n")
    log = state_dir / LOG_FILE
    if log.is_file():
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        atomic.write_text(
            log, "".join(json.dumps({**e, **context}, ensure_ascii=False) + "\n" for e in lines)
        )
