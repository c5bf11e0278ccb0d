"""export: the trained model as files that run without duetml (ONNX, labels, predict.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer

from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project


@app.command()
def export(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write the exported model into.")
    ],
    project: ProjectOption = Path("."),
    json_: JsonOption = False,
) -> None:
    """Export the model: model.onnx (photos to probabilities), labels.json, predict.py, README."""
    from duetml.export import export_project

    report = export_project(open_project(project), output)
    if json_:
        emit_json(msgspec.to_builtins(report, enc_hook=str))  # the folder as text
        return
    typer.echo(f"Exported {len(report.categories)} categories to {report.folder}:")
    for name in report.files:
        typer.echo(f"  {name}")
    typer.echo(f"Try it: python {report.folder / 'predict.py'} photo.jpg")
