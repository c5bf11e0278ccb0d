"""What every command shares: opening the project, and the one place errors become exit
codes."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duetml.errors import DuetmlError

if TYPE_CHECKING:
    from duetml.project import Project

EXIT_PARTIAL = 8  # some inputs could not be used; results for the rest were printed

_opened: list[Project] = []


def say(message: str) -> None:
    """One line on stderr, as `typer.echo(..., err=True)` writes it."""
    print(message, file=sys.stderr, flush=True)


def open_project(path: Path) -> Project:
    from duetml.project import Project

    project = Project.open(path, source="cli")
    _opened.append(project)
    if project.recovered:
        say(
            f"Note: an earlier duetml was stopped in the middle of {project.recovered}; "
            "that change was reversed, so the project is as it was before it."
        )
    return project


def note_unwritten_logs() -> None:
    for project in _opened:
        if project.journal.interrupted:
            say(
                f"Interrupted: {project.journal.interrupted} was reversed, so the project is "
                "as it was before it."
            )
        if project.log.unwritten:
            say(
                f"Note: the interaction log was not written ({project.log.unwritten.lower()}), "
                "so this command is missing from the project's history; the command worked."
            )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_guarded(command: Callable[[], object]) -> None:
    """Run a command; a DuetmlError, Ctrl-C or a disk error becomes one sentence and an exit
    code, never a traceback."""
    # SIGTERM (`kill`, a closing terminal, a service manager) stops duetml as Ctrl-C does: the
    # change in progress is reversed before exit instead of being cut off mid-way.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            command()
        finally:
            note_unwritten_logs()
    except DuetmlError as exc:
        say(f"{exc.label}: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        say("Interrupted: nothing was left half-written.")
        sys.exit(130)
    except OSError as exc:
        # The disk, not duetml: full, read-only, permissions. Writes are atomic, so the
        # project is as it was before the command.
        where = f" ({exc.filename})" if exc.filename else ""
        say(
            f"Error: {exc.strerror or exc}{where}: free some space or fix the permissions, "
            "then try again; nothing was left half-written."
        )
        sys.exit(1)
