"""`duetml review`: what may be wrong with the photos, and one-command fixes (all undoable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NamedTuple

import msgspec
import typer

from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project
from duetml.errors import DuetmlError
from duetml.project import Project
from duetml.review.fixes import FixAction

review_app = typer.Typer(
    help="Find mislabelled photos, outliers, copies and category problems; fix them (undoable).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(review_app, name="review")


@review_app.callback()
def review_root(
    ctx: typer.Context, project: ProjectOption = Path("."), json_: JsonOption = False
) -> None:
    """List the findings, most important first."""
    # `duetml review -p DIR --json list` as well as `duetml review list -p DIR --json`: the
    # subcommands take what was given before their name (Typer gives it to this callback).
    ctx.obj = _GroupOptions(project, json_)
    if ctx.invoked_subcommand is None:
        list_findings(ctx, project, json_)


class _GroupOptions(NamedTuple):
    project: Path
    json: bool


def _project(ctx: typer.Context, project: Path) -> Path:
    """The subcommand's --project, else the one given to `duetml review` itself."""
    given = ctx.obj if isinstance(ctx.obj, _GroupOptions) else None
    return given.project if given and project == Path(".") else project


@review_app.command("list")
def list_findings(
    ctx: typer.Context, project: ProjectOption = Path("."), json_: JsonOption = False
) -> None:
    """List the findings, most important first."""
    from duetml.review import review_project

    json_ = json_ or (isinstance(ctx.obj, _GroupOptions) and ctx.obj.json)
    review = review_project(open_project(_project(ctx, project)))
    if json_:
        emit_json(msgspec.to_builtins(review))
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
        suggestion = finding.suggestion
        touched = set(suggestion.photos) if suggestion else set()
        for number, rel in enumerate(finding.photos, start=1):
            # Each photo on its own line, marked when the suggestion touches it, so the user
            # can look at each and choose (`--photo`).
            mark = "*" if rel in touched else " "
            typer.echo(f"  {mark}{number:>3}. {rel}")
        if suggestion and suggestion.action not in ("keep", "add_photos"):
            hint = f"duetml review apply {finding.id}"
            if len(suggestion.photos) > 1:
                hint += " --photo PHOTO ..."
            marked = " (* above)" if suggestion.photos else ""
            typer.echo(f"    Suggestion: {suggestion.label}{marked}  ({hint})")
        elif suggestion:
            typer.echo(f"    Suggestion: {suggestion.label}")
    if review.findings:
        typer.echo(
            f"{len(review.findings)} finding(s). Apply one to the photos you choose with "
            "`duetml review apply ID --photo PHOTO ...`, keep photos as they are with "
            "`duetml review keep ID [--photo PHOTO ...]`; `duetml undo` reverts either."
        )
    if review.dismissed:
        typer.echo(f"({review.dismissed} dismissed finding(s) hidden.)")


PhotoOption = Annotated[
    list[str] | None,
    typer.Option(
        "--photo",
        help="A photo of the finding (as listed, or its path); repeat for more. "
        "The action applies to these photos only.",
    ),
]


def _chosen(proj: Project, ids: list[str], photos: list[str] | None) -> list[str] | None:
    if not photos:
        return None
    if len(ids) != 1:
        raise DuetmlError("Choose photos (--photo) of one finding at a time.")
    return [proj.find_image(p, cwd=Path.cwd()) for p in photos]


@review_app.command("apply")
def apply(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Finding ids, as `duetml review` shows them.")],
    photo: PhotoOption = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Remove the photos instead of the suggestion.")
    ] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Apply the suggestion of findings (to the chosen photos), each one undoable operation."""
    from duetml.review import apply_finding

    proj = open_project(_project(ctx, project))
    chosen = _chosen(proj, ids, photo)
    for finding_id in ids:
        action: FixAction = "remove" if remove else "suggested"
        typer.echo(apply_finding(proj, finding_id, photos=chosen, action=action))


@review_app.command("keep")
def keep(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Finding ids, as `duetml review` shows them.")],
    photo: PhotoOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Keep findings (or chosen photos of one) as they are: not raised again; undoable."""
    from duetml.review import keep_findings

    proj = open_project(_project(ctx, project))
    _, sentence = keep_findings(proj, ids, photos=_chosen(proj, ids, photo))
    typer.echo(sentence)


@review_app.command("dismiss", hidden=True)
def dismiss(
    ctx: typer.Context,
    ids: Annotated[list[str], typer.Argument(help="Finding ids, as `duetml review` shows them.")],
    photo: PhotoOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """The older name of `duetml review keep`."""
    keep(ctx, ids, photo, project)
