"""chat, ask, advise, llm status/use/proactive: the two agents from the shell.

Exit codes: 0 success; `duetml advise` exits 1 when the proactive agent has nothing new to say;
7 when an LLM cannot be used (server down, no key, no consent for a cloud endpoint, ...);
2 when the folder is not a project. Every error is one line on stderr.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project
from duetml.errors import DuetmlError

if TYPE_CHECKING:
    from duetml.agents import AgentSession

LLM_ERROR = 7
NOTHING_TO_SAY = 1

llm_app = typer.Typer(
    help="Which LLM each agent uses, and where your data goes.", no_args_is_help=True
)
app.add_typer(llm_app, name="llm")

AllowCloudOption = Annotated[
    bool,
    typer.Option(
        "--allow-cloud",
        help="Agree (once, remembered in the project) to send this project's photos to a "
        "non-local LLM endpoint.",
    ),
]


class About(str, Enum):
    chat = "chat"
    data = "data"
    results = "results"


@contextlib.contextmanager
def _one_line_errors(keep_one_free: bool = False) -> Iterator[None]:
    """A DuetmlError becomes `Error: sentence` and its exit code.

    `keep_one_free`: exit code 1 means "nothing to add" for `advise`, so generic errors (1)
    exit 7 there instead.
    """
    try:
        yield
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)
        code = exc.exit_code
        if keep_one_free and code in (0, NOTHING_TO_SAY):
            code = LLM_ERROR
        raise typer.Exit(code) from None


def _session(project: Path, allow_cloud: bool, agents: tuple[str, ...]) -> AgentSession:
    from duetml.agents import AgentSession

    session = AgentSession(open_project(project))
    if allow_cloud:
        for need in session.consent_needed():
            if need["agent"] in agents:
                session.allow_cloud(need["endpoint"])
                typer.echo(
                    f"Photos of this project may now be sent to {need['endpoint']}.", err=True
                )
    return session


def _notices(session: AgentSession) -> None:
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
    with _one_line_errors():
        if about is About.chat and not question.strip():
            raise DuetmlError("Write a question, or use `--about data` or `--about results`.")
        session = _session(project, allow_cloud, ("passive",))
        stream = session.ask_stream(question, about=about.value)
        pieces: list[str] = []
        try:
            for piece in stream:
                _notices(session)
                pieces.append(piece)
                if not json_:
                    typer.echo(piece, nl=False)
        finally:
            if pieces and not json_:
                typer.echo()  # a cut-off answer still ends its line before the error
        _notices(session)
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

    Exits 0 when it gave advice, 1 when it had nothing new to say (or nothing changed since
    its last look), 7 when the LLM could not be used. Runs even when the proactive agent is
    switched off for `duetml chat`: asking for advice is asking.
    """
    with _one_line_errors(keep_one_free=True):
        session = _session(project, allow_cloud, ("proactive",))
        problem = session.settings_error("proactive")
        if problem is not None:
            raise problem
        if not session.proactive_provider.enabled:
            raise _switched_off()
        advice = session.proactive_pass(force=True)
        _notices(session)
    if json_:
        emit_json({"advice": advice})
    elif advice:
        typer.echo(advice)
    if not advice:
        raise typer.Exit(NOTHING_TO_SAY)


def _switched_off() -> DuetmlError:
    from duetml.errors import LLMError

    return LLMError(
        "The proactive agent has no LLM (provider `none`): choose one with "
        "`duetml llm use proactive ollama:qwen2.5vl`."
    )


# --- chat -------------------------------------------------------------------------------------


class _ChatScreen:
    """Terminal output shared by the reader loop and the proactive timer thread.

    Advice that arrives while a reply streams waits until the turn is over; advice that arrives
    while the user sits at the prompt is printed at once, followed by a fresh prompt. With
    piped input (a script, a transcript) no prompt is shown until a line is read, then the line
    is echoed after it, so the output reads like the typed conversation.
    """

    PROMPT = "you> "

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at_prompt = False
        self.pending: list[str] = []
        self.typed = sys.stdin.isatty()
        # Clear the half-drawn prompt line on a terminal instead of leaving an empty "you> ".
        self.clear = (
            "\r\x1b[K" if self.typed and sys.stdout.isatty() else "\n" if self.typed else ""
        )

    def _interrupt_prompt(self, line: str, err: bool = False) -> None:
        typer.echo(f"{self.clear}{line}", err=err)
        if self.typed:
            typer.echo(self.PROMPT, nl=False)

    def advice(self, text: str) -> None:
        with self.lock:
            if self.at_prompt:
                self._interrupt_prompt(_advice_text(text))
            else:
                self.pending.append(text)

    def error(self, exc: DuetmlError) -> None:
        with self.lock:
            if self.at_prompt:
                self._interrupt_prompt(f"(proactive agent) Error: {exc}", err=True)
            else:
                typer.echo(f"(proactive agent) Error: {exc}", err=True)

    def read(self) -> str | None:
        with self.lock:
            for text in self.pending:
                typer.echo(_advice_text(text))
            self.pending.clear()
            self.at_prompt = True
        try:
            line = input(self.PROMPT if self.typed else "")
        except EOFError:
            if self.typed:
                typer.echo()
            return None
        finally:
            with self.lock:
                self.at_prompt = False
        if not self.typed:
            typer.echo(f"{self.PROMPT}{line}")
        return line


def _advice_text(text: str) -> str:
    return f"advice> {text}"


def _consent_for_chat(session: AgentSession, allow_cloud: bool) -> bool:
    """Ask once per cloud endpoint; returns whether the proactive agent may run."""
    proactive_ok = True
    for need in session.consent_needed():
        if allow_cloud:
            session.allow_cloud(need["endpoint"])
            continue
        typer.echo(
            f"The {need['agent']} agent would send this project's photos to {need['endpoint']}, "
            "which is not on this machine."
        )
        try:
            answer = input("Send them there? (yes, remembered for this project / no) [no]: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            session.allow_cloud(need["endpoint"])
        elif need["agent"] == "passive":
            from duetml.agents.choice import LOCAL_SPEC

            raise DuetmlError(
                "Nothing was sent. Keep your photos on this machine with "
                f"`duetml llm use passive {LOCAL_SPEC}`, or confirm with `--allow-cloud`."
            )
        else:
            proactive_ok = False
            typer.echo("The proactive agent stays quiet in this chat.")
    return proactive_ok


def _show_start(session: AgentSession, proactive_on: bool, interval: float) -> None:
    info = session.describe()
    passive = info["passive"]
    where = "on this machine" if passive["is_local"] else f"at {passive['endpoint']}"
    model = f"{passive['provider']}:{passive['model']}" if passive["model"] else passive["provider"]
    proactive = f"on, every {interval:g} s" if proactive_on else "off"
    typer.echo(
        f"duetml chat: {session.project.root.name} (assistant: {model} {where}; proactive advice: {proactive})"
    )
    typer.echo(
        "Type `exit` or press Ctrl-D to leave; /data or /results asks about your data or results; /help for more."
    )
    conversation = session.conversation()
    if len(conversation) > 1:
        typer.echo(f"(continuing: {len(conversation)} earlier messages, the last ones:)")
    for message in conversation[-4:]:
        typer.echo(_render(message))


def _render(message: dict[str, Any]) -> str:
    if message["kind"] == "proactive":
        return _advice_text(message["content"])
    if message["role"] == "user":
        labels = {"ask_data": "/data", "ask_results": "/results"}
        text = " ".join(filter(None, [labels.get(message["kind"]), message["content"]]))
        return f"{_ChatScreen.PROMPT}{text}"
    prefix = "error" if message["kind"] == "error" else "assistant"
    return f"{prefix}> {message['content']}"


CHAT_HELP = """\
/data [question]      ask about your training data
/results [question]   ask about your results
/advise               let the proactive agent look now
/proactive on|off     switch the proactive agent (remembered)
exit                  leave (Ctrl-D too)"""


@app.command()
def chat(
    project: ProjectOption = Path("."),
    allow_cloud: AllowCloudOption = False,
    interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between the proactive agent's looks (default: the project setting, 60)."
        ),
    ] = None,
) -> None:
    """Talk with the assistant in the terminal; proactive advice appears between turns."""
    from duetml.agents import ProactiveTimer

    with _one_line_errors():
        session = _session(project, False, ())
        proactive_ok = _consent_for_chat(session, allow_cloud)
    screen = _ChatScreen()
    every = interval if interval is not None else session.proactive_interval
    proactive_on = proactive_ok and session.proactive_enabled and session.proactive_provider.enabled
    _show_start(session, proactive_on, every)
    timer = ProactiveTimer(session, every, on_advice=screen.advice, on_error=screen.error)
    if proactive_ok and session.proactive_provider.enabled:
        timer.start()  # each tick checks the switch, so /proactive on works at once
    try:
        _chat_loop(session, screen)
    finally:
        timer.stop(timeout=1.0)


def _chat_loop(session: AgentSession, screen: _ChatScreen) -> None:
    while True:
        try:
            line = screen.read()
        except KeyboardInterrupt:
            typer.echo()
            return
        if line is None or line.strip().lower() in ("exit", "quit", "/exit", "/quit"):
            return
        text = line.strip()
        if not text:
            continue
        about, question = "chat", text
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            if command in ("/data", "/results"):
                about, question = command[1:], rest
            elif command == "/advise":
                _advise_now(session, screen)
                continue
            elif command == "/proactive" and rest.strip() in ("on", "off"):
                session.set_proactive_enabled(rest.strip() == "on")
                typer.echo(f"Proactive advice is {rest.strip()} (remembered for this project).")
                continue
            else:
                typer.echo(CHAT_HELP)
                continue
        _reply(session, question, about)


def _reply(session: AgentSession, question: str, about: str) -> None:
    typer.echo("assistant> ", nl=False)
    stream = None
    try:
        stream = session.ask_stream(question, about=about)
        for piece in stream:
            _notices(session)
            typer.echo(piece, nl=False)
        typer.echo()
    except DuetmlError as exc:
        typer.echo()
        typer.echo(f"Error: {exc}", err=True)
    except KeyboardInterrupt:
        if stream is not None:
            stream.close()
        typer.echo(" [interrupted]")
    _notices(session)


def _advise_now(session: AgentSession, screen: _ChatScreen) -> None:
    try:
        advice = session.proactive_pass(force=True)
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)
        return
    typer.echo(_advice_text(advice) if advice else "(the proactive agent has nothing new to add)")


# --- llm status / use / proactive ---------------------------------------------------------------


@llm_app.command("status")
def llm_status(project: ProjectOption = Path("."), json_: JsonOption = False) -> None:
    """Providers, reachability, installed models, vision, and where each agent's data goes."""
    from duetml.agents.status import llm_status as gather
    from duetml.errors import NotAProjectError

    with _one_line_errors():
        try:
            proj = open_project(project)
        except NotAProjectError:
            proj = None
        status = gather(proj)
    if json_:
        emit_json(status)
        return
    _print_status(status)


def _print_status(status: dict[str, Any]) -> None:
    if status["project"]:
        typer.echo(f"Project {status['project']}")
    else:
        typer.echo("No project here: showing the user-level and default settings.")
    for agent in ("passive", "proactive"):
        entry = status["agents"][agent]
        if "spec" not in entry:
            typer.echo(f"{agent} agent: settings error: {entry['error']}")
            continue
        switch = ""
        if agent == "proactive":
            switch = f" [{'on' if status['proactive_enabled'] else 'off'}, every {status['proactive_interval']:g} s]"
        typer.echo(f"{agent} agent: {entry['spec']} (from {entry['source']} settings){switch}")
        if entry["provider"] == "none":
            typer.echo("  off: nothing is sent anywhere")
            continue
        where = entry["data_goes_to"]
        if where == "this machine":
            typer.echo(f"  endpoint {entry['endpoint']}: data stays on this machine")
        else:
            consent = (
                "confirmed" if entry.get("consent") else "not confirmed yet (you will be asked)"
            )
            typer.echo(
                f"  endpoint {entry['endpoint']}: photos and text are SENT to this server; {consent}"
            )
        if entry["key"]:
            typer.echo(f"  API key: {entry['key']}")
        if entry["error"]:
            typer.echo(f"  problem: {entry['error']}")
        else:
            installed = {True: "yes", False: "NO", None: "unknown"}[entry["model_installed"]]
            vision = {
                True: "yes",
                False: "no (it gets a text description instead)",
                None: "unknown",
            }[entry["vision"]]
            typer.echo(f"  model installed: {installed}; sees images: {vision}")
    typer.echo("Servers:")
    for server in status["servers"]:
        head = f"  {server['provider']} at {server['endpoint']}"
        if not server["reachable"]:
            typer.echo(f"{head}: not reachable ({server['error']})")
            continue
        models = ", ".join(
            f"{m['name']}{' (images)' if m['vision'] else ' (text only)' if m['vision'] is False else ''}"
            for m in server["models"]
        )
        typer.echo(f"{head}: reachable; {len(server['models'])} model(s): {models or '-'}")
    typer.echo(
        f"Providers: {', '.join(status['providers'])}. Choose with `duetml llm use AGENT PROVIDER:MODEL`."
    )


@llm_app.command("use")
def llm_use(
    agent: Annotated[str, typer.Argument(help="passive, proactive or both.")],
    spec: Annotated[
        str, typer.Argument(help="PROVIDER:MODEL, e.g. ollama:qwen2.5vl, openai:gpt-4o, or none.")
    ],
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="The server's URL, e.g. http://127.0.0.1:1234/v1 for LM Studio."
        ),
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Choose the provider and model an agent uses (saved in the project's duetml.toml)."""
    import os

    from duetml.agents import choice
    from duetml.llm.config import ENV_VARS

    with _one_line_errors():
        proj = open_project(project)
        configs = choice.choose(proj, agent.strip().lower(), spec, base_url)
    for config in configs:
        typer.echo(f"The {config.agent} agent now uses {config.spec}.")
        if os.environ.get(ENV_VARS[config.agent]):
            typer.echo(
                f"  Note: {ENV_VARS[config.agent]} is set and overrides this in the current shell."
            )
    from duetml.agents import AgentSession

    with _one_line_errors():
        session = AgentSession(proj)
    for need in session.consent_needed():
        typer.echo(
            f"  Photos will be sent to {need['endpoint']}, which is not on this machine: you "
            "will be asked to confirm once (or pass --allow-cloud)."
        )


@llm_app.command("proactive")
def llm_proactive(
    state: Annotated[str, typer.Argument(help="on or off.")],
    interval: Annotated[
        float | None, typer.Option(help="Seconds between looks (at least 5).")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Switch the proactive agent on or off for this project (remembered)."""
    from duetml.agents import AgentSession, choice

    if state not in ("on", "off"):
        typer.echo("Error: say `on` or `off`.", err=True)
        raise typer.Exit(2)
    with _one_line_errors():
        session = AgentSession(open_project(project))
        session.set_proactive_enabled(state == "on")
        if interval is not None:
            seconds = max(float(interval), 5.0)
            choice.update_project_settings(
                session.project,
                lambda s: s.setdefault("agents", {}).__setitem__(
                    "proactive_interval_seconds", seconds
                ),
            )
    typer.echo(
        f"Proactive advice is {state}"
        + (f", every {session.proactive_interval:g} s." if state == "on" else ".")
    )
