"""The undo journal's two files, their shapes and checks: `journal.json` (the committed
entries, which undo and redo revert) and `journal.pending.jsonl` (the operation under way).

How the journal uses them is in duetml.journal; this module is what a line of either file must
look like, so a file damaged, edited by hand or written by someone else is read field by field,
each damage with its own sentence.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, TypeGuard

# The files' shapes: TypedDicts, not Structs, since journal.json is rewritten whole and a dict
# keeps fields a newer duetml added, which a Struct would drop. A file from elsewhere is checked
# field by field (entry_problem, _step_is_valid), each damage with its own sentence.
MoveStep = TypedDict("MoveStep", {"op": Literal["move"], "from": str, "to": str})


class CreateStep(TypedDict):
    op: Literal["create"]
    to: str


class FolderStep(TypedDict):
    op: Literal["mkdir", "rmdir"]
    path: str


Step = MoveStep | CreateStep | FolderStep  # one line of journal.pending.jsonl


class _Begun(TypedDict):
    op: Literal["begin"]
    id: str
    kind: str
    summary: str


class Begin(_Begun, total=False):  # the first line of journal.pending.jsonl
    undoes: str | None  # the id of the entry an undo or a redo reverts (it goes at commit)


class _Recorded(TypedDict):
    id: str
    ts: float
    kind: str
    summary: str
    # [source, destination], relative to the project (a list in JSON); None: an import.
    moves: list[tuple[str | None, str]]
    made_dirs: list[str]
    removed_dirs: list[str]


class Entry(_Recorded, total=False):  # one change in journal.json, which undo reverts
    origins: dict[str, list[str]]  # photo -> [where `add --move` took it from, signature]
    returned: dict[str, list[str]]  # in the trash -> [origin, signature, content hash]
    redo: bool  # it records an undo: redo reverts it


def is_redo(entry: Any) -> bool:
    """An entry recording an undo, which redo reverts (it is not on the undo list)."""
    return isinstance(entry, dict) and entry.get("redo") is True


def entry_problem(entry: Any) -> str | None:
    """Why a journal entry cannot be undone as it stands, or None."""
    if not isinstance(entry, dict):
        return "its record is damaged"
    if not isinstance(entry.get("summary"), str):
        return "its record has no description"
    moves = entry.get("moves")
    if not isinstance(moves, list) or not all(
        isinstance(m, list)
        and len(m) == 2
        and (m[0] is None or isinstance(m[0], str))
        and isinstance(m[1], str)
        for m in moves
    ):
        return "its list of moved files is damaged"
    for key in ("made_dirs", "removed_dirs"):
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "its list of folders is damaged"
    entry.setdefault("made_dirs", [])
    entry.setdefault("removed_dirs", [])
    return None


def step_is_valid(step: dict[str, Any]) -> TypeGuard[Step]:
    op = step.get("op")
    if op == "move":
        return isinstance(step.get("from"), str) and isinstance(step.get("to"), str)
    if op == "create":
        return isinstance(step.get("to"), str)
    if op in ("mkdir", "rmdir"):
        return isinstance(step.get("path"), str)
    return False
