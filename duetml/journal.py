"""The undo journal: every data operation of a project, newest last, in `.duetml/journal.json`.

Each entry records the file moves of one operation (source -> destination, relative to the
project; a source of None means the file was created by an import), the folders it made and
the folders it removed, so `undo` can put everything back. Nothing is ever deleted: photos an
undo takes away go to `.duetml/trash/`.

The caller (duetml.project.Project) holds the project's data lock around every call that
changes the journal or the files.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from duetml import atomic
from duetml.errors import NothingToUndoError
from duetml.names import resolve_inside

JOURNAL_FILE = "journal.json"
JOURNAL_LIMIT = 100


class UndoJournal:
    def __init__(self, root: Path, state_dir: Path) -> None:
        self.root = root
        self.state_dir = state_dir

    @property
    def path(self) -> Path:
        return self.state_dir / JOURNAL_FILE

    def entries(self) -> list[dict[str, Any]]:
        try:
            entries = json.loads(self.path.read_text())
            return entries if isinstance(entries, list) else []
        except (OSError, ValueError):
            return []

    def push(
        self,
        kind: str,
        summary: str,
        moves: list[Any],
        made: list[str] | None = None,
        removed: list[str] | None = None,
    ) -> None:
        entries = self.entries()
        entries.append(
            {
                "id": uuid.uuid4().hex[:12],
                "ts": time.time(),
                "kind": kind,
                "summary": summary,
                "moves": moves,
                "made_dirs": made or [],
                "removed_dirs": removed or [],
            }
        )
        atomic.write_text(self.path, json.dumps(entries[-JOURNAL_LIMIT:]))

    def history(self) -> list[str]:
        return [e.get("summary", "?") for e in reversed(self.entries())]

    def undo_last(self) -> str:
        """Revert the last operation; photos it created go to the trash, never away."""
        entries = self.entries()
        if not entries:
            raise NothingToUndoError("There is nothing to undo.")
        entry = entries[-1]
        trash = None
        for made in entry.get("removed_dirs", []):
            resolve_inside(self.root, made).mkdir(parents=True, exist_ok=True)
        for source, destination in reversed(entry.get("moves", [])):
            current = resolve_inside(self.root, destination)
            if not current.exists():
                continue  # changed by hand since; nothing to put back
            if source is None:  # created by an import: the undo moves it to the trash
                trash = trash or self.new_trash_dir()
                back = trash / destination
            else:
                back = resolve_inside(self.root, source)
                if back.exists():
                    back = free_name(back.parent, back.name)
            back.parent.mkdir(parents=True, exist_ok=True)
            os.replace(current, back)
        for made in reversed(entry.get("made_dirs", [])):
            rmdir_if_empty(resolve_inside(self.root, made))
        atomic.write_text(self.path, json.dumps(entries[:-1]))
        return str(entry.get("summary"))

    def apply_moves(self, moves: list[tuple[str, str]]) -> None:
        for source, destination in moves:
            target = self.root / destination
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / source, target)

    def new_trash_dir(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = self.state_dir / "trash" / f"{stamp}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        return folder


def free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name-1``, ``name-2``... if that is taken (never overwrite)."""
    candidate = folder / name
    stem, suffix = os.path.splitext(name)
    counter = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = folder / f"{stem}-{counter}{suffix}"
        counter += 1
    return candidate


def rmdir_if_empty(folder: Path) -> bool:
    try:
        folder.rmdir()
        return True
    except OSError:
        return False
