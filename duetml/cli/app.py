"""The Typer app, the options every command shares, and the one place errors become exits.

Nothing heavy is imported here: `duetml --help` must answer at once, so torch, numpy,
sklearn, onnxruntime and the LLM clients are imported inside the commands that need them.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from duetml.errors import DuetmlError

if TYPE_CHECKING:  # the CLI starts fast: the core is imported only by the commands that use it
    from duetml.project import Project

EXIT_PARTIAL = 8  # some inputs could not be used; results for the rest were printed

app = typer.Typer(
    name="duetml",
    help="Build an image classifier from your own photos, with an AI partner beside you.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ProjectOption = Annotated[
    Path,
    typer.Option(
        "--project",
        "-p",
        help="The project folder (default: the current folder).",
        envvar="DUETML_PROJECT",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def open_project(path: Path) -> Project:
    from duetml.project import Project

    project = Project.open(path, source="cli")
    _opened.append(project)
    if project.recovered:
        typer.echo(
            f"Note: an earlier duetml was stopped in the middle of {project.recovered}; "
            "that change was reversed, so the project is as it was before it.",
            err=True,
        )
    return project


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


_opened: list[Project] = []


def _note_unwritten_logs() -> None:
    for project in _opened:
        if project.log.unwritten:
            typer.echo(
                f"Note: the interaction log was not written ({project.log.unwritten.lower()}), "
                "so this command is missing from the project's history; the command worked.",
                err=True,
            )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # SIGTERM (`kill`, a closing terminal, a service manager) stops duetml as Ctrl-C does: the
    # change in progress is reversed before exit instead of being cut off mid-way.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            app()
        finally:
            _note_unwritten_logs()
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("Interrupted: nothing was left half-written.", err=True)
        sys.exit(130)
    except OSError as exc:
        # The disk, not duetml: full, read-only, permissions. Writes are atomic, so the
        # project is as it was before the command.
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(
            f"Error: {exc.strerror or exc}{where}: free some space or fix the permissions, "
            "then try again; nothing was left half-written.",
            err=True,
        )
        sys.exit(1)
