"""`duetml review`: what may be wrong with the photos, and one-command fixes (all undoable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project

review_app = typer.Typer(
    help="Find mislabelled photos, outliers, copies and category problems; fix them (undoable).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(review_app, name="review")

PHOTOS_SHOWN = 5


@review_app.callback()
def review_root(
    ctx: typer.Context, project: ProjectOption = Path("."), json_: JsonOption = False
) -> None:
    """List the findings, most important first."""
    if ctx.invoked_subcommand is None:
        list_findings(project, json_)


@review_app.command("list")
def list_findings(project: ProjectOption = Path("."), json_: JsonOption = False) -> None:
    """List the findings, most important first."""
    from duetml.review import review_project

    review = review_project(open_project(project))
    if json_:
        emit_json(review.as_dict())
        return
    if review.model_trained_at is None:
        typer.echo(
            "No trained model yet: only category sizes and copies are checked "
            "(run `duetml train` for mislabelled photos and confusions)."
        )
    elif review.stale:
        typer.echo("The model is older than the data: run `duetml train` to review the latest.")
    if not review.findings:
        typer.echo("No findings: the data looks clean.")
    for finding in review.findings:
        typer.echo(f"[{finding.id}] {finding.kind}: {finding.message}")
        for rel in finding.photos[:PHOTOS_SHOWN]:
            typer.echo(f"    {rel}")
        if len(finding.photos) > PHOTOS_SHOWN:
            typer.echo(f"    ... and {len(finding.photos) - PHOTOS_SHOWN} more")
        if finding.suggestion and finding.suggestion.action not in ("keep", "add_photos"):
            typer.echo(
                f"    Suggestion: {finding.suggestion.label}  (duetml review apply {finding.id})"
            )
        elif finding.suggestion:
            typer.echo(f"    Suggestion: {finding.suggestion.label}")
    if review.findings:
        typer.echo(
            f"{len(review.findings)} finding(s). Apply one with `duetml review apply ID` "
            "(`duetml undo` reverts it), or hide it with `duetml review dismiss ID`."
        )
    if review.dismissed:
        typer.echo(f"({review.dismissed} dismissed finding(s) hidden.)")


@review_app.command("apply")
def apply(
    ids: Annotated[list[str], typer.Argument(help="Finding ids, as `duetml review` shows them.")],
    project: ProjectOption = Path("."),
) -> None:
    """Apply the suggestion of findings, each as one undoable operation."""
    from duetml.review import apply_finding

    proj = open_project(project)
    for finding_id in ids:
        typer.echo(apply_finding(proj, finding_id))


@review_app.command("dismiss")
def dismiss(
    ids: Annotated[list[str], typer.Argument(help="Finding ids, as `duetml review` shows them.")],
    project: ProjectOption = Path("."),
) -> None:
    """Hide findings that are fine as they are; they are not raised again."""
    from duetml.review import dismiss_findings

    count = dismiss_findings(open_project(project), ids)
    typer.echo(f"Dismissed {count} finding(s); they will not be raised again.")
