"""ask and advise: the two agents from the shell, one question or one look at a time.

Exit codes: 0 success; `duetml advise` exits 10 when the proactive agent has nothing new to say;
7 when an LLM cannot be used (server down, no key, no consent for a cloud endpoint, ...);
9 when the folder is not a project. Every error is one line on stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project
from duetml.errors import DuetmlError, NothingNewError

if TYPE_CHECKING:
    from duetml.agents import AgentSession


AllowCloudOption = Annotated[
    bool,
    typer.Option(
        "--allow-cloud",
        "--allow-endpoint",
        help="Approve (once, remembered in your own settings for this project) the LLM "
        "endpoint this project's photos would go to: one off this machine, or one the "
        "project's duetml.toml chose.",
    ),
]


class About(StrEnum):
    chat = "chat"
    data = "data"
    results = "results"


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """A DuetmlError becomes `Error: sentence` and its exit code."""
    try:
        yield
    except DuetmlError as exc:
        typer.echo(f"{exc.label}: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def agent_session(project: Path, allow_cloud: bool, agents: tuple[str, ...]) -> AgentSession:
    """The session; endpoints waiting for approval are approved by the flag, or asked about
    when a person is at the terminal (a script without the flag gets the error sentence)."""
    import sys

    from duetml.agents import AgentSession

    session = AgentSession(open_project(project))
    for need in session.consent_needed():
        if need["agent"] not in agents:
            continue
        if allow_cloud or (sys.stdin.isatty() and ask_approval(need)):
            session.allow_cloud(need["endpoint"])
            typer.echo(f"Approved {need['endpoint']} for this project.", err=True)
    return session


def ask_approval(need: dict[str, str]) -> bool:
    """Ask yes/no about one endpoint waiting for approval; anything but yes is no."""
    from duetml.agents.choice import describe_need

    typer.echo(describe_need(need["agent"], need["endpoint"], need["reason"]), err=True)
    try:
        answer = input("Allow it for this project? (yes, remembered / no) [no]: ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def print_notices(session: AgentSession) -> None:
    for notice in session.pop_notices():
        typer.echo(f"Note: {notice}", err=True)


# --- ask and advise ---------------------------------------------------------------------------


@app.command()
def ask(
    question: Annotated[
        str, typer.Argument(help="Your question (may be empty with --about).")
    ] = "",
    about: Annotated[
        About, typer.Option("--about", help="Ask about your training data or your results.")
    ] = About.chat,
    project: ProjectOption = Path("."),
    allow_cloud: AllowCloudOption = False,
    json_: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the full reply as JSON at the end instead of streaming it."
        ),
    ] = False,
) -> None:
    """Ask the assistant one question; the reply streams as it is written."""
    with one_line_errors():
        if about is About.chat and not question.strip():
            raise DuetmlError("Write a question, or use `--about data` or `--about results`.")
        session = agent_session(project, allow_cloud, ("passive",))
        stream = session.ask_stream(question, about=about.value)
        pieces: list[str] = []
        try:
            for piece in stream:
                print_notices(session)
                pieces.append(piece)
                if not json_:
                    typer.echo(piece, nl=False)
        finally:
            if pieces and not json_:
                typer.echo()  # a cut-off answer still ends its line before the error
        print_notices(session)
        if json_:
            emit_json(
                {
                    "about": about.value,
                    "question": question,
                    "reply": "".join(pieces).strip(),
                    "goal": session.project.goal,
                    "agent": session.describe()["passive"],
                }
            )


@app.command()
def advise(
    project: ProjectOption = Path("."),
    allow_cloud: AllowCloudOption = False,
    json_: JsonOption = False,
) -> None:
    """One look by the proactive agent: prints its advice, or nothing.

    Exits 0 when it gave advice, 10 when it had nothing new to say (or nothing changed since
    its last look), 7 when the LLM could not be used. Runs even when the proactive agent is
    switched off for `duetml chat`: asking for advice is asking.
    """
    with one_line_errors():
        session = agent_session(project, allow_cloud, ("proactive",))
        problem = session.settings_error("proactive")
        if problem is not None:
            raise problem
        if not session.proactive_provider.enabled:
            raise _switched_off()
        advice = session.proactive_pass(force=True)
        print_notices(session)
        if json_:
            emit_json({"advice": advice})
        elif advice:
            typer.echo(advice)
        if not advice:
            raise NothingNewError(
                "The proactive agent has nothing new to say (nothing changed since its last "
                "look, or its advice would repeat what it said)."
            )


def _switched_off() -> DuetmlError:
    from duetml.errors import LLMError

    return LLMError(
        "The proactive agent has no LLM (provider `none`): choose one with "
        "`duetml llm use proactive ollama:qwen2.5vl`."
    )
