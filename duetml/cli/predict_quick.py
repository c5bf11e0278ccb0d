"""`duetml predict`, the body both ways in: from Typer's command, and straight from `main`
without Typer for the plain forms (photos, -p/--project, --top, --json, --csv).

Why a second way in: a cold `duetml predict` of one photo spent more importing Typer and the
pydantic it uses to coerce parameters than importing numpy, OpenCV and ONNX Runtime together
(bench/bench_predict.py). Anything else on the command line (--help, an unknown option, a
malformed --top) goes to Typer, which owns the messages, so both ways accept and print the
same things.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from duetml.cli.guard import EXIT_PARTIAL, open_project, say


@dataclass(frozen=True)
class PredictArgs:
    paths: list[Path]
    project: Path
    top: int = 3
    json: bool = False
    csv: bool = False
    abstain: bool = True


def parse(argv: list[str]) -> PredictArgs | None:
    """The arguments after `predict`, or None for anything Typer should read."""
    paths: list[Path] = []
    project = Path(os.environ.get("DUETML_PROJECT") or ".")
    top, as_json, as_csv, abstain = 3, False, False, True
    tokens = iter(argv)
    for token in tokens:
        name, equals, value = token.partition("=")
        if token in ("-p", "--project") or (name == "--project" and equals):
            value = value if equals else next(tokens, "")
            if not value:
                return None
            project = Path(value)
        elif token == "--top" or (name == "--top" and equals):
            value = value if equals else next(tokens, "")
            if not value.isdigit() or int(value) < 1:
                return None
            top = int(value)
        elif token == "--json":
            as_json = True
        elif token == "--csv":
            as_csv = True
        elif token == "--no-abstain":
            abstain = False
        elif token.startswith("-"):
            return None  # --help, --, an option Typer knows or rejects
        else:
            paths.append(Path(token))
    if not paths:
        return None  # Typer says what is missing
    return PredictArgs(paths, project, top, as_json, as_csv, abstain)


def run(args: PredictArgs) -> int:
    """Classify the photos and print the result; the exit code (0, or EXIT_PARTIAL)."""
    from duetml.abstention import REASON_TEXT
    from duetml.project import _expand_sources
    from duetml.training import (
        PREDICTION_EXTRAS,
        load_model,
        predict_sources,
        vanished_categories,
        vanished_warning,
    )

    proj = open_project(args.project)
    model = load_model(proj, PREDICTION_EXTRAS)
    vanished = vanished_categories(proj, model)
    warning = vanished_warning(vanished) if vanished else None
    if warning:
        say(f"Warning: {warning}")
    files, expand = _expand_sources(args.paths)
    predictions = (
        predict_sources(
            proj,
            files,
            [str(f) for f in files],
            top=args.top,
            model=model,
            abstain=args.abstain,
        )
        if files
        else []
    )
    problems = [{"image": s, "error": r} for s, r in expand.rejected]
    if args.json:
        rows = [p.as_dict() for p in predictions] + problems
        data = [{**row, "model_warning": warning} for row in rows] if warning else rows
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["image", "category", "confidence", "error", "not_sure"])
        for p in predictions:
            writer.writerow(
                [
                    p.source,
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
                print(f"{p.source}: cannot classify: {p.error}")
            elif p.reason:
                why = REASON_TEXT.get(p.reason, p.reason)
                print(f"{p.source}: {p.summary()}: {why}")
            else:
                ranked = ", ".join(f"{c} {prob:.0%}" for c, prob in p.ranking)
                print(f"{p.source}: {ranked}")
        for pr in problems:
            print(f"{pr['image']}: {pr['error']}")
    sys.stdout.flush()
    if problems or any(p.error for p in predictions) or not files:
        if not files and not problems:
            say("Error: no photos found in what you gave: pass image files or folders.")
        return EXIT_PARTIAL
    return 0
