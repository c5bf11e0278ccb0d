"""init, add, status, undo, redo, demo: making a project and filling it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from duetml.cli.app import (
    JsonOption,
    NewOption,
    ProjectOption,
    app,
    check_new_category,
    emit_json,
    open_project,
)

if TYPE_CHECKING:
    from duetml.importing import AddReport


def print_add_report(report: AddReport, verbose_added: bool = False) -> None:
    typer.echo(f"Added {len(report.added)} photo(s).")
    for duplicate in report.duplicates:
        typer.echo(
            f"  duplicate, skipped: {duplicate.source} (the copy kept is {duplicate.existing})"
        )
    for rejected in report.rejected:
        typer.echo(f"  not added: {rejected.source}: {rejected.reason}")
    for link in report.skipped_links:
        typer.echo(f"  symbolic link, skipped: {link}")


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to make the project.")],
    goal: Annotated[str, typer.Option(help="What the classifier is for, in your words.")] = "",
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Copy a dataset: a folder of category folders (train/ and test/ inside are kept).",
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Make a new project folder (optionally from an existing folder-of-folders dataset)."""
    from duetml.project import Project

    project, report = Project.init(folder, goal=goal, from_source=from_)
    if json_:
        emit_json({"project": str(project.root), "import": msgspec.to_builtins(report)})
        return
    typer.echo(f"Created project {project.root}")
    if report is not None:
        print_add_report(report)
        cats = project.categories()
        typer.echo(
            f"{len(cats)} categories: "
            + ", ".join(f"{c.name} ({c.count})" for c in cats[:20])
            + (" ..." if len(cats) > 20 else "")
        )
    if report is not None and report.added:
        typer.echo(f"Next: duetml train -p {folder}")
    else:
        typer.echo(
            f"Next: duetml add CATEGORY PHOTOS... -p {folder}   then   duetml train -p {folder}"
        )


@app.command()
def add(
    category: Annotated[str, typer.Argument(help="The category to add photos to (made if new).")],
    paths: Annotated[
        list[Path], typer.Argument(help="Photo files and folders (searched recursively).")
    ],
    move: Annotated[
        bool, typer.Option("--move", help="Move the files in instead of copying them.")
    ] = False,
    test: Annotated[bool, typer.Option("--test", help="Add to the held-out test set.")] = False,
    new: NewOption = False,
    project: ProjectOption = Path("."),
    json_: JsonOption = False,
) -> None:
    """Import photos into a category. Every file is decoded first; duplicates are skipped."""
    proj = open_project(project)
    check_new_category(proj, category, new)
    report = proj.add_images(category, paths, move=move, split="test" if test else "train")
    if json_:
        emit_json(msgspec.to_builtins(report))
    else:
        print_add_report(report)
    if not report.added and (report.rejected or report.skipped_links):
        raise typer.Exit(8)


@app.command()
def status(project: ProjectOption = Path("."), json_: JsonOption = False) -> None:
    """Categories with photo counts, and warnings about what would hurt a model."""
    from duetml.health import project_health

    proj = open_project(project)
    state = project_health(proj)
    if json_:
        emit_json({"project": str(proj.root), "goal": proj.goal, **msgspec.to_builtins(state)})
        return
    typer.echo(f"Project {proj.root}")
    if proj.goal:
        typer.echo(f"Goal: {proj.goal}")
    if not state.categories:
        typer.echo("No categories yet: add photos with `duetml add CATEGORY PHOTOS...`.")
    width = max((len(c["name"]) for c in state.categories), default=8)
    for cat in state.categories:
        test = f"  (+{cat['test_images']} test)" if cat["test_images"] else ""
        typer.echo(f"  {cat['name']:<{width}}  {cat['images']:>5}{test}")
    typer.echo(f"{state.images} photo(s) in {len(state.categories)} categories.")
    if state.model:
        acc = state.model["cv_accuracy"]
        added = state.model.get("cv_added_since") or 0
        kind = "held-out" if added else "cross-validated"
        since = f" ({added} photo(s) added since the last full cross-validation)" if added else ""
        acc_text = f", {kind} accuracy {acc:.1%}{since}" if acc is not None else ""
        typer.echo(f"Model: {state.model['backbone']}{acc_text}.")
    else:
        typer.echo("Model: none yet (run `duetml train`).")
    for warning in state.warnings:
        typer.echo(f"Warning: {warning.message}")
    if state.review and state.review["findings"]:
        typer.echo(f"Review: {state.review['summary']}: see `duetml review`.")


@app.command()
def undo(
    project: ProjectOption = Path("."),
    list_: Annotated[
        bool, typer.Option("--list", help="Show what can be undone, newest first.")
    ] = False,
) -> None:
    """Revert the last change (add, rename, merge, move, remove). Nothing is ever lost."""
    proj = open_project(project)
    if list_:
        for line in proj.undo_history() or ["(nothing to undo)"]:
            typer.echo(line)
        return
    undone = proj.undo_once()
    if undone.interrupted:
        typer.echo(f"Undone: {undone.summary}, which an earlier duetml left half done.")
        older = proj.undo_history()
        then = f"`duetml undo` again would undo {older[0]}" if older else "nothing older"
        typer.echo(f"Reversing it was the undo, so nothing older was undone ({then}).")
        return
    typer.echo(f"Undone: {undone.summary}")
    typer.echo(f"(`duetml redo` would {undone.summary} again.)")


@app.command()
def redo(
    project: ProjectOption = Path("."),
    list_: Annotated[
        bool, typer.Option("--list", help="Show what can be redone, newest first.")
    ] = False,
) -> None:
    """Do again the change you undid last (until you make a new change)."""
    proj = open_project(project)
    if list_:
        for line in proj.redo_history() or ["(nothing to redo)"]:
            typer.echo(line)
        return
    typer.echo(f"Redone: {proj.redo()}")


@app.command()
def demo(
    folder: Annotated[Path, typer.Argument(help="Where to make the demo project.")] = Path(
        "duetml-demo"
    ),
) -> None:
    """Make a demo project from real photos that ship with duetml, train it and evaluate it."""
    from duetml.cli.model_cmds import print_eval, run_training
    from duetml.demo import open_or_create_demo_project

    proj, reused = open_or_create_demo_project(folder)
    if reused:
        typer.echo(
            f"Using the demo project already in {folder} "
            "(`duetml demo OTHER_DIR` makes a new one)..."
        )
    else:
        typer.echo(f"Created a demo project in {folder} (4 kinds of clothing, 25 photos each).")
    run_training(proj)
    from duetml.evaluation import evaluate_project

    print_eval(evaluate_project(proj), limit=5)
    typer.echo(
        f"\nNext: try it on a photo with `duetml predict PHOTO -p {folder}`, "
        f"see `duetml status -p {folder}`, or open the page with `duetml serve -p {folder}`."
    )
