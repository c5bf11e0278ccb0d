"""`duetml categories ...`: list, add, rename, merge, remove categories and move photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

categories_app = typer.Typer(
    help="List and change categories (every change can be undone with `duetml undo`).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(categories_app, name="categories")


@categories_app.callback()
def categories_root(
    ctx: typer.Context, project: ProjectOption = Path("."), json_: JsonOption = False
) -> None:
    """List the categories with their photo counts."""
    if ctx.invoked_subcommand is None:
        list_categories(project, json_)


@categories_app.command("list")
def list_categories(project: ProjectOption = Path("."), json_: JsonOption = False) -> None:
    """List the categories with their photo counts."""
    infos = open_project(project).categories()
    if json_:
        emit_json([{"name": i.name, "images": i.count, "test_images": i.test_count} for i in infos])
        return
    if not infos:
        typer.echo("No categories yet: add one with `duetml categories add NAME`.")
    for info in infos:
        test = f"  (+{info.test_count} test)" if info.test_count else ""
        typer.echo(f"{info.name}\t{info.count}{test}")


@categories_app.command("add")
def add_category(
    names: Annotated[list[str], typer.Argument(help="One or more category names.")],
    project: ProjectOption = Path("."),
) -> None:
    """Add empty categories (one change: a single `duetml undo` takes them all back)."""
    for name in open_project(project).add_categories(names):
        typer.echo(f"Added category {name!r}.")


@categories_app.command("rename")
def rename_category(
    old: Annotated[str, typer.Argument(help="The current name.")],
    new: Annotated[str, typer.Argument(help="The new name.")],
    project: ProjectOption = Path("."),
) -> None:
    """Rename a category (its test photos too)."""
    name = open_project(project).rename_category(old, new)
    typer.echo(f"Renamed {old!r} to {name!r}.")


@categories_app.command("merge")
def merge_categories(
    sources: Annotated[list[str], typer.Argument(help="The categories to merge.")],
    into: Annotated[str, typer.Option("--into", help="The category they become (made if new).")],
    new: NewOption = False,
    project: ProjectOption = Path("."),
) -> None:
    """Merge several categories into one, e.g. carrot + tomato -> edible."""
    proj = open_project(project)
    check_new_category(proj, into, new)
    moved = proj.merge_categories(sources, into)
    typer.echo(f"Merged {', '.join(sources)} into {into!r} ({moved} photo(s) moved).")


@categories_app.command("remove")
def remove_category(
    name: Annotated[str, typer.Argument(help="The category to remove.")],
    project: ProjectOption = Path("."),
) -> None:
    """Remove a category; its photos go to the project's trash (`duetml undo` brings them back)."""
    open_project(project).remove_category(name)
    typer.echo(f"Removed {name!r} (kept in the trash: `duetml undo` brings it back).")


@categories_app.command("move")
def move_images(
    images: Annotated[
        list[str],
        typer.Argument(
            help="Photos: as `duetml categories show` lists them (train/hat/ab12.jpg), a path "
            "to the file, or its name alone (ab12.jpg)."
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="The category to move them to.")],
    new: NewOption = False,
    project: ProjectOption = Path("."),
) -> None:
    """Move photos to another category."""
    proj = open_project(project)
    check_new_category(proj, to, new)
    moved = proj.move_images([proj.find_image(i) for i in images], to)
    typer.echo(f"Moved {len(moved)} photo(s) to {to!r}.")


@categories_app.command("move-set")
def move_to_set(
    images: Annotated[
        list[str],
        typer.Argument(help="Photos: an id (train/hat/ab12.jpg), a path to the file, or its name."),
    ],
    to: Annotated[
        str, typer.Option("--to", help="`test` (kept apart to measure the model) or `train`.")
    ],
    project: ProjectOption = Path("."),
) -> None:
    """Move photos between the training and the test set; each keeps its category."""
    proj = open_project(project)
    moved = proj.move_to_split([proj.find_image(i) for i in images], to)
    where = "the test set" if to == "test" else "the training set"
    typer.echo(f"Moved {len(moved)} photo(s) to {where}.")


@categories_app.command("show")
def show_category(
    name: Annotated[str, typer.Argument(help="The category.")],
    test: Annotated[bool, typer.Option("--test", help="Show its test photos.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """List a category's photos (their ids are what `move` and `remove-images` take)."""
    for record in open_project(project).images("test" if test else "train", name):
        typer.echo(record.rel)


@categories_app.command("remove-images")
def remove_images(
    images: Annotated[list[str], typer.Argument(help="Photos, e.g. train/hat/ab12.jpg.")],
    project: ProjectOption = Path("."),
) -> None:
    """Remove photos; they go to the project's trash."""
    proj = open_project(project)
    count = proj.remove_images([proj.find_image(i) for i in images])
    typer.echo(f"Removed {count} photo(s) (kept in the trash: `duetml undo` brings them back).")
