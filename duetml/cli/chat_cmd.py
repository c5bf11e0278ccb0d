"""`duetml chat`: a conversation with the assistant in the terminal, advice between turns."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from duetml.cli.app import ProjectOption, app
from duetml.errors import DuetmlError

if TYPE_CHECKING:
    from duetml.agents import AgentSession
    from duetml.agents.conversation import Message

from duetml.cli.agent_cmds import (
    AllowCloudOption,
    agent_session,
    ask_approval,
    one_line_errors,
    print_notices,
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
    """Ask once per endpoint waiting for approval; returns whether the proactive agent may run."""
    proactive_ok = True
    for need in session.consent_needed():
        if allow_cloud or ask_approval(need):
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
        f"duetml chat: {session.project.root.name} "
        f"(assistant: {model} {where}; proactive advice: {proactive})"
    )
    typer.echo(
        "Type `exit` or press Ctrl-D to leave; /data or /results asks about your data or "
        "results; /help for more."
    )
    conversation = session.conversation()
    if len(conversation) > 1:
        typer.echo(f"(continuing: {len(conversation)} earlier messages, the last ones:)")
    for message in conversation[-4:]:
        typer.echo(_render(message))


def _proposal_lines(message: Message) -> str:
    """The changes an agent proposed, numbered for `/apply N`; applied ones are marked."""
    lines = []
    for proposal in message.get("proposals") or ():
        mark = " (applied)" if proposal.get("applied") else f"   /apply {proposal['number']}"
        lines.append(f"  [{proposal['number']}] {proposal['label']}{mark}")
        photos = proposal.get("photos") or (proposal.get("suggestion") or {}).get("photos") or []
        if len(photos) > 1:  # each photo it touches, to look at before applying
            lines += [f"      - {rel}" for rel in photos]
    return "".join(f"\n{line}" for line in lines)


def _render(message: Message) -> str:
    if message["kind"] == "proactive":
        return _advice_text(message["content"]) + _proposal_lines(message)
    if message["role"] == "user":
        labels = {"ask_data": "/data", "ask_results": "/results"}
        text = " ".join(filter(None, [labels.get(message["kind"]), message["content"]]))
        return f"{_ChatScreen.PROMPT}{text}"
    prefix = "error" if message["kind"] == "error" else "assistant"
    return f"{prefix}> {message['content']}" + _proposal_lines(message)


CHAT_HELP = """\
/data [question]      ask about your training data
/results [question]   ask about your results
/advise               let the proactive agent look now
/apply N              apply the change an agent proposed as [N] (one undoable step)
/undo                 undo the last change to the data
/redo                 do again the change undone last
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

    with one_line_errors():
        session = agent_session(project, False, ())
        proactive_ok = _consent_for_chat(session, allow_cloud)
    screen = _ChatScreen()
    every = interval if interval is not None else session.proactive_interval
    proactive_on = proactive_ok and session.proactive_enabled and session.proactive_provider.enabled
    _show_start(session, proactive_on, every)

    def advice(text: str) -> None:
        screen.advice(text + _latest_proposals(session, "proactive"))

    timer = ProactiveTimer(session, every, on_advice=advice, on_error=screen.error)
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
            elif command == "/apply" and rest.strip():
                _apply(session, rest.strip())
                continue
            elif command == "/undo":
                _undo(session)
                continue
            elif command == "/redo":
                _redo(session)
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
            print_notices(session)
            typer.echo(piece, nl=False)
        typer.echo(_latest_proposals(session, "assistant"))
    except DuetmlError as exc:
        typer.echo()
        typer.echo(f"Error: {exc}", err=True)
    except KeyboardInterrupt:
        if stream is not None:
            stream.close()
        typer.echo(" [interrupted]")
    print_notices(session)


def _advise_now(session: AgentSession, screen: _ChatScreen) -> None:
    try:
        advice = session.proactive_pass(force=True)
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)
        return
    if not advice:
        typer.echo("(the proactive agent has nothing new to add)")
        return
    typer.echo(_advice_text(advice) + _latest_proposals(session, "proactive"))


def _latest_proposals(session: AgentSession, role: str) -> str:
    """The proposal lines of the newest message from `role` ("assistant" or "proactive")."""
    for message in reversed(session.conversation()):
        if message["role"] == "assistant" and (message["kind"] == "proactive") == (
            role == "proactive"
        ):
            return _proposal_lines(message)
    return ""


def _apply(session: AgentSession, which: str) -> None:
    try:
        typer.echo(session.apply_proposal(which.lstrip("[").rstrip("]")) + " (/undo reverts it)")
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)


def _undo(session: AgentSession) -> None:
    try:
        undone = session.project.undo_once()
        if undone.interrupted:
            typer.echo(
                f"Undone: {undone.summary}, which an earlier duetml left half done (reversing "
                "it was the undo; nothing older was undone)."
            )
        else:
            typer.echo(f"Undone: {undone.summary}.")
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)


def _redo(session: AgentSession) -> None:
    try:
        typer.echo(f"Redone: {session.project.redo()}.")
    except DuetmlError as exc:
        typer.echo(f"Error: {exc}", err=True)
