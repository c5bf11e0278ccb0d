"""train, eval, predict, backbones: the model from the shell."""

from __future__ import annotations

import csv
import gc
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project
from duetml.cli.guard import EXIT_PARTIAL, say

if TYPE_CHECKING:
    from rich.console import Console

    from duetml.evaluation import EvalReport
    from duetml.features import Progress as ExtractionProgress
    from duetml.prediction import Prediction
    from duetml.project import Project
    from duetml.training import TrainReport


def run_training(
    proj: Project, wait: bool = False, quiet: bool = False, full: bool = False
) -> TrainReport:
    """Train with a progress bar (images/s and ETA) on stderr; print the result."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    from duetml.training import PHASE_LABELS, train_project

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, disable=quiet, console=_stderr_console()) as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(p: ExtractionProgress) -> None:
            # One line per phase that takes a while: features, then the classifier's steps.
            if p.phase not in tasks:
                label = PHASE_LABELS.get(p.phase, p.phase)
                tasks[p.phase] = bar.add_task(label, total=p.total, detail="")
            detail = f"{p.rate:.0f} images/s" if p.phase == "features" else ""
            bar.update(tasks[p.phase], completed=p.done, total=p.total, detail=detail)

        report = train_project(proj, progress=on_progress, wait=wait, reuse_choice=not full)
    if not quiet:
        typer.echo(
            f"Trained on {report.images} photos in {len(report.categories)} categories "
            f"({report.extracted} new feature vectors, {report.seconds:.1f} s)."
        )
        if report.cv_accuracy is not None:
            how = " kept from the last selection" if report.reused_choice else ""
            fitted = (
                f"ridge classifier, penalty {report.C:g}, used from 10,000 photos"
                if report.kernel == "ridge"
                else f"SVM {report.kernel} C={report.C:g}{how}"
            )
            if report.cv_added_since:
                # Not a fresh cross-validation: say what the figure is made of.
                typer.echo(
                    f"Held-out accuracy: {report.cv_accuracy:.1%} ({fitted}): the "
                    f"{report.cv_folds}-fold cross-validation of the last full training "
                    f"({report.cv_fresh_photos} photos), with the "
                    f"{report.cv_added_since} photo(s) added since predicted by the model "
                    "trained before them. `duetml train --full` cross-validates afresh."
                )
            else:
                typer.echo(
                    f"Cross-validated accuracy: {report.cv_accuracy:.1%} "
                    f"({report.cv_folds}-fold, {fitted})."
                )
        else:
            typer.echo(f"No accuracy estimate: {report.why_no_cv}")
        for notice in report.notices:
            typer.echo(notice)
        for skipped in report.skipped:
            typer.echo(f"  skipped {skipped.image}: {skipped.reason}")
        if report.empty_categories:
            names = ", ".join(repr(c) for c in report.empty_categories)
            typer.echo(
                f"Left out (no photos): {names}; the model cannot predict "
                f"{'it' if len(report.empty_categories) == 1 else 'them'} until you add photos."
            )
    return report


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def train(
    project: ProjectOption = Path("."),
    wait: Annotated[
        bool,
        typer.Option("--wait", help="If another training runs, wait for it instead of stopping."),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Select the SVM and cross-validate afresh, even after a small change.",
        ),
    ] = False,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32 (the default) or int8 (the quantized backbone: faster, within about "
            "0.3 points of fp32's accuracy); the project keeps this choice for later trainings."
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Extract features (cached by photo content), fit the SVM, report cross-validated accuracy.

    After a small change (under 5% of the photos, from 2,000 photos on) only the final model
    is fitted and the last cross-validation is extended with the new photos; --full redoes
    the selection and the cross-validation."""
    proj = open_project(project)
    if precision is not None:
        proj.set_precision(precision)
    report = run_training(proj, wait=wait, quiet=json_, full=full)
    if json_:
        emit_json(msgspec.to_builtins(report))


def print_eval(report: EvalReport, limit: int = 20) -> None:
    typer.echo(f"Evaluation on the {report.source}: accuracy {report.accuracy:.1%}")
    if report.not_sure is not None:
        figure = report.not_sure
        rest = figure["accuracy_when_sure"]
        typer.echo(
            f'`predict` would answer "not sure" on {figure["photos"]} of {figure["of"]} test '
            "photos"
            + (
                f" (accuracy on the other {figure['of'] - figure['photos']}: {rest:.1%})"
                if rest is not None and figure["photos"]
                else ""
            )
            + "; the figures here count its closest guess."
        )
    if report.stale:
        typer.echo(
            "Note: the data changed since the model was trained; "
            "run `duetml train` for current figures."
        )
    width = max(len(c) for c in report.categories)
    typer.echo(f"\n{'category':<{width}}  precision  recall     f1  photos")
    for row in report.per_category:
        typer.echo(
            f"{row['category']:<{width}}  {row['precision']:>9.2f}  {row['recall']:>6.2f}  "
            f"{row['f1']:>5.2f}  {row['support']:>6}"
        )
    n = len(report.categories)
    if n <= 12:
        typer.echo("\nConfusion matrix (rows: true category, columns: predicted):")
        for line in confusion_lines(report.categories, report.confusion):
            typer.echo(line)
    else:
        typer.echo("\nMost confused (true -> predicted):")
        for true, pred, count, share in report.confused_pairs(10):
            typer.echo(f"  {true} -> {pred}: {count} ({share:.0%} of {true})")
    if report.mistakes:
        typer.echo(f"\nMisclassified photos ({len(report.mistakes)}), most confident first:")
        for m in report.mistakes[:limit]:
            typer.echo(
                f"  {m['image']}: {m['true']} predicted as {m['predicted']} ({m['confidence']:.0%})"
            )
        if len(report.mistakes) > limit:
            typer.echo(f"  ... and {len(report.mistakes) - limit} more (use --json for all).")


def confusion_lines(
    categories: list[str], confusion: list[list[int]], max_width: int = 100
) -> list[str]:
    """The matrix with whole names as column heads; when they do not fit in `max_width`,
    the columns are numbered and each row starts with its number (never cut names)."""
    width = max(len(c) for c in categories)
    cell = max(len(str(v)) for row in confusion for v in row)
    columns = [max(len(c), cell) for c in categories]
    if width + 2 + sum(w + 2 for w in columns) <= max_width:
        head = " " * width + "".join(
            f"  {c:>{w}}" for c, w in zip(categories, columns, strict=True)
        )
        rows = [
            f"{name:<{width}}"
            + "".join(f"  {v:>{w}}" for v, w in zip(counts, columns, strict=True))
            for name, counts in zip(categories, confusion, strict=True)
        ]
        return [head, *rows]
    number = len(str(len(categories)))
    columns = [max(number, cell)] * len(categories)
    label = [f"{i + 1:>{number}} {name}" for i, name in enumerate(categories)]
    label_width = max(len(x) for x in label)
    head = " " * label_width + "".join(
        f"  {i + 1:>{w}}" for i, w in zip(range(len(categories)), columns, strict=True)
    )
    rows = [
        f"{lab:<{label_width}}"
        + "".join(f"  {v:>{w}}" for v, w in zip(counts, columns, strict=True))
        for lab, counts in zip(label, confusion, strict=True)
    ]
    return [head, *rows, "(columns are numbered as the rows)"]


@app.command("eval")
def eval_(project: ProjectOption = Path("."), json_: JsonOption = False) -> None:
    """Evaluate on the test set (test/CATEGORY/) if there is one, else by cross-validation."""
    from duetml.evaluation import evaluate_project

    report = evaluate_project(open_project(project))
    if json_:
        emit_json(msgspec.to_builtins(report))
    else:
        print_eval(report)


def _open_session_early(project: Path) -> None:
    """Have ONNX Runtime build the backbone's session while predict reads the rest (see
    `open_session_early`), for the backbone and precision the project's duetml.toml names.
    A guess: where the model was trained at another precision, or the project cannot be
    read, predict opens its session, or says what is wrong, as it would have."""
    from duetml.backbones import get_backbone, open_session_early
    from duetml.errors import DuetmlError
    from duetml.settings import LEGACY_PRECISION, read_settings

    try:
        settings = read_settings(project)
        backbone = get_backbone(settings.backbone, settings.precision or LEGACY_PRECISION)
    except (DuetmlError, OSError):
        return
    open_session_early(backbone)


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Photos (or folders of photos) to classify.")],
    project: ProjectOption = Path("."),
    top: Annotated[int, typer.Option(min=1, help="How many categories to show per photo.")] = 3,
    json_: JsonOption = False,
    csv_: Annotated[
        bool, typer.Option("--csv", help="Print CSV: image,category,confidence,error,not_sure.")
    ] = False,
    no_abstain: Annotated[
        bool,
        typer.Option(
            "--no-abstain",
            help='Always name the most likely category, never answer "not sure".',
        ),
    ] = False,
) -> None:
    """Classify photos with the trained model: top categories with calibrated probabilities.

    A photo unlike the training photos of every category, or too close to call, gets "not
    sure (closest: CATEGORY NN%)"; --json has `not_sure` and `reason`.

    Exit codes: 0 all classified; 3 no model yet; 8 some photos could not be read.
    """
    _open_session_early(project)
    from duetml.importing import expand_sources
    from duetml.prediction import (
        PREDICTION_EXTRAS,
        load_model,
        predict_sources,
        vanished_categories,
        vanished_warning,
    )

    # duetml.cli.main turned the cyclic collector off for these imports (see there): what
    # they made lives as long as the process, so it is set aside from later collections.
    gc.freeze()
    gc.enable()
    proj = open_project(project)
    model = load_model(proj, PREDICTION_EXTRAS)
    vanished = vanished_categories(proj, model)
    warning = vanished_warning(vanished) if vanished else None
    if warning:
        say(f"Warning: {warning}")
    files, expand = expand_sources(paths)
    predictions = (
        predict_sources(
            proj,
            files,
            [str(f) for f in files],
            top=top,
            model=model,
            abstain=not no_abstain,
        )
        if files
        else []
    )
    problems = [{"image": r.source, "error": r.reason} for r in expand.rejected]
    _print_predictions(predictions, problems, warning, json_=json_, csv_=csv_)
    sys.stdout.flush()
    if problems or any(p.error for p in predictions) or not files:
        if not files and not problems:
            say("Error: no photos found in what you gave: pass image files or folders.")
        raise typer.Exit(EXIT_PARTIAL)


def _print_predictions(
    predictions: list[Prediction],
    problems: list[dict[str, str]],
    warning: str | None,
    *,
    json_: bool,
    csv_: bool,
) -> None:
    """Each photo's answer as --json, --csv or text; the photos that could not be read last."""
    from duetml.abstention import REASON_TEXT

    if json_:
        rows = [msgspec.to_builtins(p) for p in predictions] + problems
        emit_json([{**row, "model_warning": warning} for row in rows] if warning else rows)
    elif csv_:
        writer = csv.writer(sys.stdout)
        writer.writerow(["image", "category", "confidence", "error", "not_sure"])
        for p in predictions:
            writer.writerow(
                [
                    p.image,
                    p.ranking[0][0] if p.ranking else "",
                    f"{p.ranking[0][1]:.4f}" if p.ranking else "",
                    p.error or "",
                    ("true" if p.not_sure else "false") if p.ranking else "",
                ]
            )
        for pr in problems:
            writer.writerow([pr["image"], "", "", pr["error"], ""])
    else:
        for p in predictions:
            if p.error:
                print(f"{p.image}: cannot classify: {p.error}")
            elif p.reason:
                why = REASON_TEXT.get(p.reason, p.reason)
                print(f"{p.image}: {p.summary()}: {why}")
            else:
                ranked = ", ".join(f"{c} {prob:.0%}" for c, prob in p.ranking)
                print(f"{p.image}: {ranked}")
        for pr in problems:
            print(f"{pr['image']}: {pr['error']}")


backbones_app = typer.Typer(
    help="Feature extractors: list them, download or import their weights.",
    invoke_without_command=True,
)
app.add_typer(backbones_app, name="backbones")


@backbones_app.callback()
def backbones_root(ctx: typer.Context, json_: JsonOption = False) -> None:
    """List the feature extractors and whether each is ready offline."""
    if ctx.invoked_subcommand is not None:
        return
    from duetml.backbones import BACKBONES, TORCH_EXTRA, find_weights, needs_torch

    rows = []
    for backbone in BACKBONES.values():
        weights = find_weights(backbone)
        torch_missing = needs_torch(backbone)
        rows.append(
            {
                "name": backbone.name,
                "ready": weights is not None and not torch_missing,
                "needs_torch": torch_missing,
                "weights": str(weights) if weights else None,
                "description": backbone.description,
                "feature_dim": backbone.feature_dim,
            }
        )
    if json_:
        emit_json(rows)
        return
    for row in rows:
        state = (
            "needs PyTorch" if row["needs_torch"] else "ready" if row["ready"] else "not downloaded"
        )
        typer.echo(f"{row['name']:<20} {state:<15} {row['description']}")
    if any(r["needs_torch"] for r in rows):
        typer.echo(f"\nThose that need PyTorch are exported with it once: `{TORCH_EXTRA}`.")
    if not all(r["ready"] or r["needs_torch"] for r in rows):
        typer.echo(
            "\nGet the others with `duetml backbones pull NAME`, or on an offline machine "
            "`duetml backbones import NAME FILE` with the .pth file from torchvision."
        )
    typer.echo("Choose one for a project with `duetml backbones use NAME -p PROJECT`.")


@backbones_app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="e.g. mobilenet-v3-large")],
    url: Annotated[
        str | None, typer.Option(help="Download from this URL instead (a mirror).")
    ] = None,
) -> None:
    """Download a backbone's ImageNet weights once into duetml's cache."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from duetml.backbones import get_backbone, pull_weights

    backbone = get_backbone(name)
    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=_stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(f"Downloading {name}", total=None)
        path = pull_weights(
            backbone,
            url=url,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    typer.echo(f"{name} is ready: {path}")


@backbones_app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="e.g. mobilenet-v3-large")],
    file: Annotated[
        Path, typer.Argument(help="The weights file (e.g. mobilenet_v3_large-8738ca79.pth).")
    ],
) -> None:
    """Use a weights file brought in by hand (machines without internet)."""
    from duetml.backbones import get_backbone, import_weights

    path = import_weights(get_backbone(name), file)
    typer.echo(f"{name} is ready: {path}")


@backbones_app.command("use")
def use(
    name: Annotated[str, typer.Argument(help="The backbone for this project.")],
    project: ProjectOption = Path("."),
    precision: Annotated[
        str | None,
        typer.Option(help="fp32 (the default) or int8 (faster)."),
    ] = None,
) -> None:
    """Switch the project's backbone (the next `duetml train` uses it)."""
    from duetml.backbones import check_precision, get_backbone, require_weights

    backbone = get_backbone(name)
    if precision is not None:
        check_precision(precision)
    require_weights(backbone)
    proj = open_project(project)
    proj.update_settings(lambda settings: replace(settings, backbone=backbone.name))
    proj.log.record("set_backbone", backbone=backbone.name)
    if precision is not None:
        proj.set_precision(precision)
    typer.echo(f"The project now uses {backbone.name} ({proj.precision}): run `duetml train`.")
