"""The undo journal, written ahead: every data operation is undoable, even one that was killed.

Committed operations live in `.duetml/journal.json`, newest last. Each entry records the file
moves of one operation (source -> destination, relative to the project; a source of None means
the file was created by an import), the folders it made and the folders it removed, so `undo`
can put everything back. Nothing is ever deleted: photos an undo takes away go to
`.duetml/trash/`.

While an operation runs, `.duetml/journal.pending.jsonl` holds its intent (first line) and
then each step, written and flushed to disk *before* the step is done. An operation ends in
one of two ways:
- it finishes: its entry is appended to journal.json (atomically), then the pending file goes;
- it fails (disk full, Ctrl-C, SIGTERM) or the process dies (SIGKILL, power loss): its steps
  are reversed, by the process itself or, after a death, by the next duetml that takes the
  data lock. So a change is either whole and undoable, or not there at all, and `undo` always
  reverts the change the user made last.

Redo: an undo is itself recorded, as an entry marked ``"redo": true`` that holds the moves the
undo made (photos it took away are in the trash, so nothing is needed from elsewhere); `redo`
reverts that entry exactly as `undo` reverts a change, and commits by swapping it for the
entry of what it did, which `undo` can take back again. Redo entries stay in journal.json
after the changes (one atomic write moves an entry between the two lists, so a redo is as
crash-safe as an undo); recording any new change drops them, as in every editor.

The caller (duetml.project.Project) holds the project's data lock around every operation.
Every path read from these files goes through `resolve_inside`, because a project folder may
come from someone else: a journal can never make duetml touch anything outside the project.
The one exception, putting photos back where `add --move` took them from, is honoured only
for entries this user's duetml signed (a key in the user's own folder).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duetml import atomic
from duetml.errors import (
    DiskFullError,
    DuetmlError,
    NothingToRedoError,
    NothingToUndoError,
    UndoSkippedError,
)
from duetml.journal_format import (
    Begin,
    CreateStep,
    Entry,
    MoveStep,
    Step,
    entry_problem,
    is_redo,
    step_is_valid,
)
from duetml.names import resolve_inside
from duetml.paths import user_home

JOURNAL_FILE = "journal.json"
PENDING_FILE = "journal.pending.jsonl"
DAMAGED_PREFIX = "journal-damaged-"
JOURNAL_LIMIT = 100
ORIGIN_KEY_FILE = "undo-origins.key"


@dataclass
class Operation:
    """One data operation in progress; its steps are on disk before they are done."""

    journal: UndoJournal
    kind: str
    summary: str
    steps: list[Step] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    origins: dict[str, list[str]] = field(default_factory=dict)
    # For an undo: photos going back to where `add --move` took them from, by their place in
    # the trash, with the content's hash, so a redo can take them again (and only them).
    returned: dict[str, list[str]] = field(default_factory=dict)
    handle: Any = None

    def _write_ahead(self, step: Step) -> None:
        self.handle.write(json.dumps(step) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.steps.append(step)

    def move(self, source: Path, destination: Path) -> None:
        """Rename a file or folder inside the project."""
        step: MoveStep = {
            "op": "move",
            "from": self.journal.rel(source),
            "to": self.journal.rel(destination),
        }
        self._write_ahead(step)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, destination)

    def create(self, destination: Path, data: bytes, origin: Path | None = None) -> None:
        """Store a new file (an import); ``origin`` is where `add --move` took it from."""
        rel = self.journal.rel(destination)
        self._write_ahead({"op": "create", "to": rel})
        atomic.write_bytes(destination, data)
        if origin is not None:
            self.origins[rel] = [str(origin), self.journal.sign_origin(rel, str(origin))]

    def note_return(self, photo: Path, in_trash: Path, origin: Path) -> None:
        rel = self.journal.rel(in_trash)
        digest = images_hash(photo.read_bytes())
        self.returned[rel] = [str(origin), self.journal.sign_origin(rel, str(origin)), digest]

    def create_many(self, files: Sequence[tuple[Path, bytes, Path | None]]) -> None:
        """`create` for a batch of (destination, data, origin): every intent is on disk (one
        flush) before any file is made, then the files are written together (atomic.write_many).
        A crash at any point leaves files the pending steps name, so recovery removes them."""
        if not files:
            return
        steps: list[CreateStep] = [{"op": "create", "to": self.journal.rel(d)} for d, _, _ in files]
        self.handle.write("".join(json.dumps(step) + "\n" for step in steps))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.steps.extend(steps)
        atomic.write_many([(destination, data) for destination, data, _ in files])
        for step, (_, _, origin) in zip(steps, files, strict=True):
            if origin is not None:
                rel = step["to"]
                self.origins[rel] = [str(origin), self.journal.sign_origin(rel, str(origin))]

    def make_dir(self, folder: Path) -> None:
        self._write_ahead({"op": "mkdir", "path": self.journal.rel(folder)})
        folder.mkdir(parents=True)

    def remove_dir_if_empty(self, folder: Path) -> bool:
        if any(folder.iterdir()):
            return False  # leftovers (symlinks, sub-folders) keep it alive rather than be lost
        self._write_ahead({"op": "rmdir", "path": self.journal.rel(folder)})
        folder.rmdir()
        return True

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def entry(self) -> Entry:
        moves: list[tuple[str | None, str]] = []
        for step in self.steps:
            if step["op"] == "move":
                moves.append((step["from"], step["to"]))
            elif step["op"] == "create":
                moves.append((None, step["to"]))
        entry: Entry = {
            "id": self.id,
            "ts": time.time(),
            "kind": self.kind,
            "summary": self.summary,
            "moves": moves,
            "made_dirs": [s["path"] for s in self.steps if s["op"] == "mkdir"],
            "removed_dirs": [s["path"] for s in self.steps if s["op"] == "rmdir"],
        }
        if self.origins:
            entry["origins"] = self.origins
        return entry


@dataclass(frozen=True)
class Undone:
    """What an undo took back; ``interrupted``: a change a killed duetml left half done, whose
    reversal was the undo (nothing older was touched)."""

    summary: str
    interrupted: bool = False


class UndoJournal:
    def __init__(self, root: Path, state_dir: Path) -> None:
        self.root = root
        self.state_dir = state_dir
        # The change that Ctrl-C or SIGTERM stopped (and that was reversed), for the CLI to say.
        self.interrupted: str | None = None
        # The change a killed duetml left half done that `recover` reversed, until the next
        # change commits: an undo asked for meanwhile is that reversal, and goes no further.
        self.reversed_since_kill: str | None = None

    @property
    def path(self) -> Path:
        return self.state_dir / JOURNAL_FILE

    @property
    def pending_path(self) -> Path:
        return self.state_dir / PENDING_FILE

    def rel(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    # ----- reading ------------------------------------------------------------------------
    def load(self) -> tuple[list[Any], str | None]:
        """The raw entries, and why the file could not be read as a list (None if it could)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return [], None
        except UnicodeDecodeError:
            return [], "it is not text"
        try:
            entries = json.loads(text)
        except (ValueError, RecursionError):
            return [], "it is not valid JSON"
        if not isinstance(entries, list):
            return [], "it is not a list of changes"
        return entries, None

    def entries(self) -> list[Entry]:
        """The entries that can be undone (damaged ones and redo entries are left out)."""
        return [e for e in self.load()[0] if entry_problem(e) is None and not is_redo(e)]

    def history(self, redo: bool = False) -> list[str]:
        """What undo (or redo) would do, newest first."""
        entries, problem = self.load()
        if problem:
            return [f"(the undo history cannot be read: {problem}; the next undo keeps a copy)"]
        lines = []
        verb = "redo" if redo else "undo"
        for entry in reversed(entries):
            if is_redo(entry) != redo:
                continue
            if entry_problem(entry) is None:
                lines.append(str(entry["summary"]))
            else:
                lines.append(f"(a damaged change that cannot be {verb}ne; {verb} skips it)")
        return lines

    def damaged_copies(self) -> list[Path]:
        return sorted(self.state_dir.glob(f"{DAMAGED_PREFIX}*"))

    # ----- operations (the caller holds the data lock) ---------------------------------------
    @contextlib.contextmanager
    def operation(
        self,
        kind: str,
        summary: str,
        undoes: Entry | None = None,
        redoes: Entry | None = None,
    ) -> Iterator[Operation]:
        """Run one operation write-ahead; on any failure its steps are reversed, then re-raised.

        The commit is one atomic write of journal.json: the operation's entry is added (for an
        undo or a redo, the entry ``undoes``/``redoes`` is swapped for the operation's own,
        which redo or undo can revert in turn). The pending file names the entry that goes,
        so the next start can tell a committed operation (keep) from an interrupted one
        (reverse). A full disk becomes a DiskFullError saying the project is as before.
        """
        self.recover()
        operation = Operation(self, kind, summary)
        begin: Begin = {
            "op": "begin",
            "id": operation.id,
            "kind": kind,
            "summary": summary,
        }
        reverted = undoes if undoes is not None else redoes
        if reverted is not None:
            begin["undoes"] = reverted.get("id")
        try:
            with open(self.pending_path, "x", encoding="utf-8") as handle:
                operation.handle = handle
                handle.write(json.dumps(begin) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                yield operation
                operation.handle = None
            if reverted is not None:
                self._swap(reverted, operation, as_redo=undoes is not None)
            elif operation.changed:
                self._append(operation.entry())
            if reverted is not None or operation.changed:
                self.reversed_since_kill = None
        except BaseException as exc:
            self._rollback(operation.steps, own_files=True)
            with contextlib.suppress(FileNotFoundError):
                self.pending_path.unlink()
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM in the CLI
                self.interrupted = operation.summary
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(
                    f"The disk is full, so {summary} was not done and the project is as it "
                    "was: free some space and try again."
                ) from None
            raise
        self.pending_path.unlink()

    def recover(self) -> str | None:
        """Reverse an operation that a killed duetml left half done; return its summary.

        One that died after its commit (the journal already says it happened) is kept.
        """
        try:
            lines = self.pending_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return None
        steps: list[Step] = []
        begin: dict[str, Any] = {}  # as found: a Begin, unless damaged
        for number, line in enumerate(lines):
            try:
                step = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a torn last line: written before its step, so the step never ran
            if not isinstance(step, dict):
                continue
            if number == 0 and step.get("op") == "begin":
                begin = step
            elif step_is_valid(step):
                steps.append(step)
        ids = {e.get("id") for e in self.load()[0] if isinstance(e, dict)}
        if "undoes" in begin:
            committed = begin["undoes"] not in ids
        else:
            committed = begin.get("id") in ids
        if not committed:
            self._rollback(steps)
        self.pending_path.unlink()
        if committed:
            return None
        summary = str(begin.get("summary", "an interrupted change"))[:200]
        # Reversing a killed undo puts its change back: an undo asked for now still takes it.
        self.reversed_since_kill = None if begin.get("kind") == "undo" else summary
        return summary

    def _rollback(self, steps: list[Step], own_files: bool = False) -> None:
        """Reverse ``steps``, newest first. Files an import created are deleted when this
        process made them (``own_files``: their originals are still where they came from, and a
        full disk needs the room back); found in a pending file, which a project from
        elsewhere could have planted, they go to the trash instead."""
        trash: Path | None = None
        for step in reversed(steps):
            try:
                if step["op"] == "move":
                    source = resolve_inside(self.root, step["from"])
                    current = resolve_inside(self.root, step["to"])
                    if _exists(current) and not _exists(source):
                        source.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(current, source)
                elif step["op"] == "create":
                    current = resolve_inside(self.root, step["to"])
                    if own_files:
                        current.unlink(missing_ok=True)
                    elif _exists(current):
                        trash = trash or self.new_trash_dir()
                        back = trash / step["to"]
                        back.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(current, back)
                elif step["op"] == "mkdir":
                    rmdir_if_empty(resolve_inside(self.root, step["path"]))
                elif step["op"] == "rmdir":
                    resolve_inside(self.root, step["path"]).mkdir(parents=True, exist_ok=True)
            except (DuetmlError, OSError):
                continue  # a path changed by hand meanwhile: put back everything else

    def _append(self, entry: Entry) -> None:
        entries, problem = self.load()
        if problem:
            self.set_aside()
            entries = []
        # A new change ends what could be redone (what it would redo may no longer fit).
        entries = [e for e in entries if not is_redo(e)]
        entries.append(entry)
        atomic.write_text(self.path, json.dumps(entries[-JOURNAL_LIMIT:]))

    def _swap(self, reverted: Entry, operation: Operation, as_redo: bool) -> None:
        """Take ``reverted`` off the journal and record what reverting it did, in the same
        write: an undo's moves become a redo entry, a redo's a change that undo takes back."""
        entries = [
            e for e in self.load()[0] if not (isinstance(e, dict) and e.get("id") == reverted["id"])
        ]
        if operation.changed or operation.returned:
            record = operation.entry()
            record["kind"] = reverted.get("kind", operation.kind)
            record["summary"] = reverted["summary"]
            if as_redo:
                record["redo"] = True
                if operation.returned:
                    record["returned"] = operation.returned
            entries.append(record)
        atomic.write_text(self.path, json.dumps(entries))

    def set_aside(self) -> Path:
        """Keep an unreadable journal as a copy (never lose it) and start a fresh one."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        copy = self.state_dir / f"{DAMAGED_PREFIX}{stamp}-{uuid.uuid4().hex[:6]}.json"
        os.replace(self.path, copy)
        return copy

    # ----- undo ---------------------------------------------------------------------------
    def undo_last(self) -> Undone:
        """Revert the last operation; photos it created go to the trash, never away.

        A change a killed duetml left half done, reversed since the last change (when the
        project was opened, or now), is the last change: its reversal is the undo, and the
        change before it stays (as `git` stops at an interrupted operation). An entry that
        cannot be undone (damaged, or naming a path that is now a symbolic link) is taken off
        the list with a sentence, so the next undo reverts the change before it. What the undo
        did is recorded, so `redo` can do the change again.
        """
        self.recover()
        if self.reversed_since_kill is not None:
            summary, self.reversed_since_kill = self.reversed_since_kill, None
            return Undone(summary, interrupted=True)
        return Undone(self._revert_last(redo=False))

    def redo_last(self) -> str:
        """Do again the change undone last (until a new change is recorded)."""
        return self._revert_last(redo=True)

    def _revert_last(self, redo: bool) -> str:
        entries, place = self._last_revertible(redo)
        return self._revert(entries, place, redo)

    def _last_revertible(self, redo: bool) -> tuple[list[Entry], int]:
        """The journal's entries and the place of the one an undo (or redo) takes back next;
        an unreadable history or an entry that cannot be taken back is an error that says so."""
        self.recover()
        entries, problem = self.load()
        verb = "redo" if redo else "undo"
        if problem:
            copy = self.set_aside()
            error = NothingToRedoError if redo else NothingToUndoError
            raise error(
                f"The undo history could not be read ({problem}), so nothing was {verb}ne: it "
                f"is kept as {self.rel(copy)} and a new history starts with your next change."
            )
        places = [i for i, e in enumerate(entries) if is_redo(e) == redo]
        if not places:
            if redo:
                raise NothingToRedoError(
                    "There is nothing to redo: redo does again what undo took back, until "
                    "the next change."
                )
            raise NothingToUndoError("There is nothing to undo.")
        place = places[-1]
        entry = entries[place]
        reason = entry_problem(entry) or self._path_problem(entry)
        if reason:
            atomic.write_text(self.path, json.dumps(entries[:place] + entries[place + 1 :]))
            summary = entry.get("summary") if isinstance(entry, dict) else None
            name = f"The last change ({str(summary)[:80]})" if summary else "The last change"
            which = "undone change" if redo else "change"
            raise UndoSkippedError(
                f"{name} cannot be {verb}ne ({reason}): it was taken off the {verb} list, and "
                f"`duetml {verb}` now takes the {which} before it.",
                web=f"{name} cannot be {verb}ne ({reason}): it was taken off the {verb} list, "
                f"and {verb.capitalize()} now takes the {which} before it.",
            )
        return entries, place

    def _revert(self, entries: list[Entry], place: int, redo: bool) -> str:
        """Take back entry `place` as one journalled operation (itself undoable), then send
        photos `add --move` took back where they came from; its summary."""
        entry = entries[place]
        verb = "redo" if redo else "undo"
        if not isinstance(entry.get("id"), str):  # the commit of the undo names it by its id
            entry["id"] = uuid.uuid4().hex[:12]
            atomic.write_text(self.path, json.dumps(entries))
        returned: list[tuple[Path, Path]] = []
        taken: list[tuple[Path, str]] = []
        summary = str(entry["summary"])
        reverting = {"redoes": entry} if redo else {"undoes": entry}
        with self.operation(verb, f"the {verb} of {summary}", **reverting) as operation:
            for made in entry["removed_dirs"]:
                folder = resolve_inside(self.root, made)
                if not folder.exists():
                    operation.make_dir(folder)
            trash = None
            for source, destination in reversed(entry["moves"]):
                current = resolve_inside(self.root, destination)
                if not _exists(current):
                    # Changed by hand since, nothing to put back; or, for a redo, a photo the
                    # undo sent back to where `add --move` took it from: take it again.
                    again = self._verified_return(entry, destination) if redo else None
                    if again is not None and source is not None:
                        target = resolve_inside(self.root, source)
                        if _exists(target):
                            target = free_name(target.parent, target.name)
                        operation.create(target, again[1], origin=again[0])
                        taken.append((again[0], images_hash(again[1])))
                    continue
                if source is None:  # created by an import: the undo moves it to the trash
                    trash = trash or self.new_trash_dir()
                    back = trash / destination
                    origin = self._verified_origin(entry, destination)
                    if origin is not None:
                        returned.append((back, origin))
                        operation.note_return(current, back, origin)
                else:
                    back = resolve_inside(self.root, source)
                    if _exists(back):
                        back = free_name(back.parent, back.name)
                operation.move(current, back)
            for made in reversed(entry["made_dirs"]):
                folder = resolve_inside(self.root, made)
                if folder.is_dir() and not folder.is_symlink():
                    operation.remove_dir_if_empty(folder)
        # Only now, with the undo committed, do photos leave the project for where `add --move`
        # took them from; if that fails (or the place is taken) they stay in the trash.
        for in_trash, origin in returned:
            _return_to_origin(in_trash, origin)
        # A redo of `add --move` takes them from there again, as the add did (same content only).
        for origin, digest in taken:
            with contextlib.suppress(OSError):
                if origin.is_file() and images_hash(origin.read_bytes()) == digest:
                    origin.unlink()
        return summary

    def _verified_return(self, entry: Entry, rel: str) -> tuple[Path, bytes] | None:
        """A photo an undo sent back to where `add --move` took it from, still unchanged there:
        (its place, its content). Only for records this user's duetml signed."""
        records: object = entry.get("returned")  # from disk: checked here
        record = records.get(rel) if isinstance(records, dict) else None
        if not (isinstance(record, list) and len(record) == 3):
            return None
        if not all(isinstance(part, str) for part in record):
            return None
        origin, signature, digest = record
        if not hmac.compare_digest(self.sign_origin(rel, origin), signature):
            return None
        try:
            data = Path(origin).read_bytes()
        except OSError:
            return None
        return (Path(origin), data) if images_hash(data) == digest else None

    def _path_problem(self, entry: Entry) -> str | None:
        try:
            for source, destination in entry["moves"]:
                resolve_inside(self.root, destination)
                if source is not None:
                    resolve_inside(self.root, source)
            for folder in [*entry["made_dirs"], *entry["removed_dirs"]]:
                resolve_inside(self.root, folder)
        except DuetmlError as exc:
            return str(exc).rstrip(".")
        return None

    # ----- where `add --move` took photos from ----------------------------------------------
    def sign_origin(self, rel: str, origin: str) -> str:
        message = f"{self.root}\0{rel}\0{origin}".encode()
        return hmac.new(_origin_key(), message, hashlib.sha256).hexdigest()

    def _verified_origin(self, entry: Entry, rel: str) -> Path | None:
        origins = entry.get("origins")
        record = origins.get(rel) if isinstance(origins, dict) else None
        if not (isinstance(record, list) and len(record) == 2):
            return None
        if not all(isinstance(part, str) for part in record):
            return None
        origin, signature = record
        if not hmac.compare_digest(self.sign_origin(rel, origin), signature):
            return None  # not written by this user's duetml (a project from elsewhere)
        return Path(origin)

    def new_trash_dir(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = self.state_dir / "trash" / f"{stamp}-{uuid.uuid4().hex[:6]}"
        folder.mkdir(parents=True)
        return folder


def images_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _origin_key() -> bytes:
    """A per-user secret: entries signed with it were written by this user's duetml."""
    path = user_home() / ORIGIN_KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _return_to_origin(in_trash: Path, origin: Path) -> None:
    if _exists(origin) or not origin.parent.is_dir() or not in_trash.is_file():
        return  # the place is taken or gone: the photo stays in the trash, never overwrites
    try:
        os.link(in_trash, origin)  # fails if the place was taken meanwhile, never overwrites
        in_trash.unlink()
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            return
        # Another file system: copy, then drop the trash copy only once the copy is whole.
        with contextlib.suppress(OSError):
            partial = origin.with_name(f".{origin.name}.duetml-undo")
            shutil.copy2(in_trash, partial)
            os.link(partial, origin)
            partial.unlink()
            in_trash.unlink()


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
