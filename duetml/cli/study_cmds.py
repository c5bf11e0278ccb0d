"""`duetml study`: run the paper's between-subjects user study (docs/study.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from duetml.cli.app import JsonOption, app, emit_json, fail

study_app = typer.Typer(
    help="Run a user study: participants, conditions, timed tasks, questionnaires, blind "
    "rating, the analysis and an anonymised export.",
    no_args_is_help=True,
)
app.add_typer(study_app, name="study")

StudyDir = Annotated[Path, typer.Argument(help="The study folder.")]


@study_app.command("init")
def init(
    folder: StudyDir,
    participants: Annotated[
        int, typer.Option("--participants", "-n", help="How many participants.", min=1)
    ] = 12,
    conditions: Annotated[
        str, typer.Option("--conditions", help="The conditions, comma-separated.")
    ] = "agents,baseline",
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed of the random assignment (default: a random one, recorded in study.json).",
        ),
    ] = None,
    task: Annotated[
        list[Path] | None,
        typer.Option(
            "--task",
            help="A task file (TOML: title, minutes, text), in order; "
            "repeat for each task. Default: a practice and the paper's two tasks.",
        ),
    ] = None,
    consent: Annotated[
        Path | None, typer.Option("--consent", help="The consent text (Markdown) to show.")
    ] = None,
) -> None:
    """Make a study folder: a project per participant and task, conditions balanced at random."""
    from duetml.study.design import init_study

    study = init_study(
        folder,
        participants,
        tuple(conditions.split(",")),
        seed=seed,
        task_files=task or None,
        consent=consent,
    )
    design = study.design
    counts = {c: sum(p.condition == c for p in design.participants) for c in design.conditions}
    typer.echo(
        f"Made the study {folder}: {len(design.participants)} participants "
        f"({', '.join(f'{n} {c}' for c, n in counts.items())}), seed {design.seed}; tasks "
        + ", ".join(f"{t.id} ({t.minutes:g} min)" for t in design.tasks)
        + "."
    )
    first = design.participants[0].id
    typer.echo(f"Run a session with: duetml serve --study {folder} --participant {first}")


@study_app.command("status")
def status(folder: StudyDir, json_: JsonOption = False) -> None:
    """Each participant: condition, where they are, tasks done, questionnaires answered."""
    from duetml.study.design import Study
    from duetml.study.status import study_status

    rows = study_status(Study.open(folder))
    if json_:
        emit_json(rows)
        return
    typer.echo(f"{'id':<6}{'condition':<10}{'phase':<14}{'task':<14}{'tasks':<8}answers")
    for r in rows:
        phase = r["phase"]  # a withdrawn participant's phase is "withdrawn"
        tasks = f"{r['tasks_done']}/{r['tasks']}"
        typer.echo(
            f"{r['participant']:<6}{r['condition']:<10}{phase:<14}{r['task'] or '-':<14}"
            f"{tasks:<8}{r['answered']}/{r['to_answer']}"
        )


@study_app.command("report")
def report(
    folder: StudyDir,
    json_: JsonOption = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where the plots go (default: DIR/report)."),
    ] = None,
    eq_unit: Annotated[
        str,
        typer.Option(
            "--eq-unit",
            help="The unit of the raters' EQ tests: `ratings` (every "
            "rating, as the paper) or `participants` (each one's mean over raters).",
        ),
    ] = "ratings",
) -> None:
    """Medians, IQR and Mann-Whitney U per item and condition; raters' agreement; activity."""
    from duetml.study.design import Study
    from duetml.study.report import EQ_UNITS, build_report, plot_items

    if eq_unit not in EQ_UNITS:
        fail(f"--eq-unit is one of {', '.join(EQ_UNITS)}, not {eq_unit!r}.")
    study = Study.open(folder)
    result = build_report(study, eq_unit)
    plots = plot_items(result, out or study.root / "report")
    result["plots"] = [str(p) for p in plots]
    if json_:
        emit_json(result)
        return
    x, y = result["conditions"][:2]
    n = {c: len(v) for c, v in result["participants"].items()}
    typer.echo(
        "Participants: "
        + ", ".join(f"{n[c]} {c}" for c in result["conditions"])
        + (
            f"; withdrawn (left out): {', '.join(result['withdrawn'])}"
            if result["withdrawn"]
            else ""
        )
        + f"; raters: {len(result['raters'])}"
    )
    typer.echo(
        f"\n{'item':<7}{'task':<13}{x + ' median [IQR]':<24}{y + ' median [IQR]':<24}"
        f"{'U':>6}{'p':>8}  {'r':>6}  method"
    )
    if not result["items"]:
        typer.echo("(no answers or ratings yet)")
    for item in result["items"]:
        cells = []
        for c in (x, y):
            d = item["by_condition"][c]
            cells.append(f"{d['median']:g} [{d['q1']:g}-{d['q3']:g}] n={d['n']}" if d["n"] else "-")
        test = item["test"]
        stats = (
            f"{test['U']:>6g}{test['p']:>8.2g}  {test['rank_biserial']:>+6.2f}  {test['method']}"
            if test
            else ""
        )
        typer.echo(f"{item['item']:<7}{item['task']:<13}{cells[0]:<24}{cells[1]:<24}{stats}")
    typer.echo("\nRaters' agreement (Krippendorff's alpha, ordinal):")
    for item, a in result["agreement"].items():
        alpha = f"{a['alpha']:.2f}" if a["alpha"] is not None else f"- ({a.get('note')})"
        typer.echo(f"  {item}: {alpha}  ({a['raters']} raters, {a['units']} rated)")
    typer.echo("\nActivity per task (median per condition):")
    for row in result["activity_summary"]:
        cells = [
            f"{c} {d['median']:g}" if d["n"] else f"{c} -" for c, d in row["by_condition"].items()
        ]
        typer.echo(f"  {row['task']:<13}{row['measure']:<19}" + "   ".join(cells))
    if result["plots"]:
        typer.echo("\nPlots: " + ", ".join(result["plots"]))


@study_app.command("replay")
def replay(
    folder: StudyDir,
    participant: Annotated[str, typer.Argument(help="The participant, like P07.")],
    json_: JsonOption = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the timeline as a page to this file.")
    ] = None,
) -> None:
    """A participant's session as a timeline of events (text, --json or an --html page)."""
    from duetml.study.design import Study
    from duetml.study.replay import format_line, timeline

    entries = timeline(Study.open(folder), participant)
    if html is not None:
        from duetml import atomic
        from duetml.study.replay import timeline_html

        atomic.write_text(html, timeline_html(participant, entries))
        typer.echo(f"Wrote {participant}'s timeline ({len(entries)} events) to {html}")
        return
    if json_:
        emit_json(entries)
        return
    if not entries:
        typer.echo(f"{participant} has no events yet.")
    for entry in entries:
        typer.echo(format_line(entry))


@study_app.command("session")
def session_step(
    folder: StudyDir,
    participant: Annotated[str, typer.Argument(help="The participant, like P07.")],
    action: Annotated[
        str,
        typer.Argument(help="pause, resume, finish (end the task now) or withdraw."),
    ],
    json_: JsonOption = False,
) -> None:
    """The experimenter's controls from a terminal; the participant's page follows in a second."""
    from duetml.study.design import Study
    from duetml.study.session import ParticipantSession

    actions = ("pause", "resume", "finish", "withdraw")
    if action not in actions:
        fail(f"The action is one of {', '.join(actions)}, not {action!r}.")
    session = ParticipantSession(Study.open(folder), participant)
    state = session.finish(by="experimenter") if action == "finish" else getattr(session, action)()
    if json_:
        emit_json(state)
        return
    task = state["task"]
    typer.echo(f"{participant}: {state['phase']}" + (f" ({task['title']})" if task else ""))


@study_app.command("export")
def export(
    folder: StudyDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="A new folder for the package.")],
    json_: JsonOption = False,
) -> None:
    """An anonymised package for sharing, with a long-format data.csv (docs/study.md)."""
    from duetml.study.design import Study
    from duetml.study.export import export_study

    result = export_study(Study.open(folder), out)
    if json_:
        emit_json(result)
        return
    typer.echo(
        f"Exported {result['participants']} participants ({result['photos']} thumbnails, "
        f"{result['rows']} rows in data.csv) to {out}"
        + (
            f"; left out (withdrawn): {', '.join(result['withdrawn'])}"
            if result["withdrawn"]
            else ""
        )
        + "."
    )


def serve_session(
    folder: Path | None, participant: str | None, host: str, port: int | None, open_browser: bool
) -> None:
    """`duetml serve --study DIR --participant P07` (on this machine only)."""
    from duetml.cli.serve_cmd import _choose_port, _is_loopback
    from duetml.study.session import ParticipantSession
    from duetml.web.routes_study import create_session_app

    if folder is None or participant is None:
        fail("A session needs both --study DIR and --participant ID (like P07).")
    if not _is_loopback(host):
        fail("A study session is served on this machine only: leave out --host.")
    chosen = _choose_port(host, port)
    web_app = create_session_app(folder, participant, port=chosen)
    session: ParticipantSession = web_app.session
    _run(
        web_app,
        host,
        chosen,
        open_browser,
        f"Serving {participant}'s session ({session.condition}) of the study {folder}",
    )


@study_app.command("rate")
def rate(
    folder: StudyDir,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default 8765 or the next free one).")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in your browser.")
    ] = True,
) -> None:
    """Serve the raters' page: each participant's final training data, blind, with EQ1-EQ5."""
    from duetml.cli.serve_cmd import _choose_port
    from duetml.study.design import Study
    from duetml.study.ratings import rated_data
    from duetml.web.routes_study import create_rating_app

    count = len(rated_data(Study.open(folder)))
    if count == 0:
        fail("Nothing to rate yet: no participant has finished a rated task.")
    chosen = _choose_port("127.0.0.1", port)
    _run(
        create_rating_app(folder, port=chosen),
        "127.0.0.1",
        chosen,
        open_browser,
        f"Serving {count} pieces of training data to rate from {folder}",
    )


def _run(web_app: Any, host: str, port: int, open_browser: bool, what: str) -> None:
    from duetml.cli.serve_cmd import run_until_stopped

    url = f"http://{host}:{port}/"
    typer.echo(f"{what} at {url}")
    run_until_stopped(web_app, host, port, url, open_browser)
