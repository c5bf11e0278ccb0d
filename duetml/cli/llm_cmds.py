"""`duetml llm status|use|proactive`: which LLM each agent uses, and where your data goes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from duetml.cli.agent_cmds import one_line_errors
from duetml.cli.app import JsonOption, ProjectOption, app, emit_json, open_project

llm_app = typer.Typer(
    help="Which LLM each agent uses, and where your data goes.", no_args_is_help=True
)
app.add_typer(llm_app, name="llm")

# What a model's "vision" field (True, False or None: not known) adds to its name in a listing.
_VISION_NOTE = {True: " (images)", False: " (text only)", None: ""}


# --- llm status / use / proactive ---------------------------------------------------------------


@llm_app.command("status")
def llm_status(project: ProjectOption = Path("."), json_: JsonOption = False) -> None:
    """Providers, reachability, installed models, vision, and where each agent's data goes."""
    from duetml.agents.status import llm_status as gather
    from duetml.errors import NotAProjectError

    with one_line_errors():
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
            on_off = "on" if status["proactive_enabled"] else "off"
            switch = f" [{on_off}, every {status['proactive_interval']:g} s]"
        typer.echo(f"{agent} agent: {entry['spec']} (from {entry['source']} settings){switch}")
        if entry["provider"] == "none":
            typer.echo("  off: nothing is sent anywhere")
            continue
        where = entry["data_goes_to"]
        if where == "this machine":
            down = any(
                server["endpoint"] == entry["endpoint"] and not server["reachable"]
                for server in status["servers"]
            )
            if down:
                typer.echo(
                    f"  endpoint {entry['endpoint']}: NOT REACHABLE (on this machine: data "
                    "would stay here once it runs)"
                )
            else:
                typer.echo(f"  endpoint {entry['endpoint']}: data stays on this machine")
        else:
            consent = (
                "confirmed" if entry.get("consent") else "not confirmed yet (you will be asked)"
            )
            if entry.get("chosen_by_project"):
                consent = (
                    "approved by you for this project"
                    if entry.get("consent")
                    else "CHOSEN BY THIS PROJECT'S duetml.toml and not approved by you: nothing "
                    "is sent there until you run `duetml llm approve`"
                )
            sent = "are SENT" if entry.get("consent") else "would be sent"
            typer.echo(
                f"  endpoint {entry['endpoint']}: photos and text {sent} to this server; {consent}"
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
        _print_context(entry, status.get("max_context"))
    typer.echo("Servers:")
    for server in status["servers"]:
        head = f"  {server['provider']} at {server['endpoint']}"
        if not server["reachable"]:
            typer.echo(f"{head}: not reachable ({server['error']})")
            continue
        models = ", ".join(m["name"] + _VISION_NOTE[m["vision"]] for m in server["models"])
        typer.echo(f"{head}: reachable; {len(server['models'])} model(s): {models or '-'}")
    if status.get("memory_warning"):
        typer.echo(f"Warning: {status['memory_warning']}")
    typer.echo(
        f"Providers: {', '.join(status['providers'])}. "
        "Choose with `duetml llm use AGENT PROVIDER:MODEL`."
    )


def _print_context(entry: dict[str, Any], cap: int | None) -> None:
    """The model's context, and the size of the agent's last request and whether it fitted."""
    length = entry.get("context_length")
    if length or cap:
        model = f"model {length:,} tokens" if length else "model's own size unknown"
        capped = f" (capped by your setting at {cap:,})" if cap else ""
        typer.echo(f"  context: {model}{capped}")
    last = entry.get("last_request")
    if not last:
        return
    images = (
        f", {last['images']} image(s) ({last['image_tokens']:,} tokens)" if last["images"] else ""
    )
    asked = f" in a context of {last['num_ctx']:,}" if last.get("num_ctx") else ""
    if not last.get("fitted"):
        verdict = "CUT by the server (duetml retried smaller)"
    elif last.get("shrunk"):
        verdict = f"fitted after shrinking: the assistant saw {last['shrunk']}"
    else:
        verdict = "fitted whole"
    typer.echo(
        f"  last request ({last['model']}): about {last['tokens']:,} tokens{images}{asked}; "
        f"{verdict}"
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

    with one_line_errors():
        proj = open_project(project)
        configs = choice.choose(proj, agent.strip().lower(), spec, base_url)
    for config in configs:
        typer.echo(f"The {config.agent} agent now uses {config.spec}.")
        if os.environ.get(ENV_VARS[config.agent]):
            typer.echo(
                f"  Note: {ENV_VARS[config.agent]} is set and overrides this in the current shell."
            )
    from duetml.agents import AgentSession

    with one_line_errors():
        session = AgentSession(proj)
    for need in session.consent_needed():
        typer.echo(
            f"  Photos will be sent to {need['endpoint']}, which is not on this machine: you "
            "will be asked to confirm once (or pass --allow-cloud)."
        )


@llm_app.command("approve")
def llm_approve(
    project: ProjectOption = Path("."),
    revoke: Annotated[
        bool,
        typer.Option("--revoke", help="Withdraw every approval you gave this project instead."),
    ] = False,
) -> None:
    """Approve the endpoints this project's agents wait for (kept in your own settings)."""
    from duetml.agents import choice

    with one_line_errors():
        proj = open_project(project)
        if revoke:
            removed = choice.revoke(proj.root)
            for endpoint in removed:
                typer.echo(f"Withdrawn: {endpoint} is no longer approved for this project.")
            if not removed:
                typer.echo("Nothing was approved for this project.")
            return
        for agent in ("passive", "proactive"):
            # A setting that does not parse is said, not read as "nothing waits": there is
            # no server to approve until it is fixed.
            choice.make_provider(choice.resolve(agent, proj.settings))
        pending = choice.pending_approvals(proj)
        if not pending:
            typer.echo("Nothing waits for approval: every agent's endpoint may be used.")
            return
        for need in pending:
            typer.echo(choice.describe_need(need["agent"], need["endpoint"], need["reason"]))
        for endpoint in dict.fromkeys(need["endpoint"] for need in pending):
            choice.grant_consent(proj, endpoint)
            typer.echo(
                f"Approved {endpoint} for {proj.root} "
                "(withdraw with `duetml llm approve --revoke`)."
            )


@llm_app.command("proactive")
def llm_proactive(
    state: Annotated[str, typer.Argument(help="on or off.")],
    interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between looks (at least 30; set a shorter one in your own config.toml)."
        ),
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Switch the proactive agent on or off for this project (remembered)."""
    from duetml.agents import AgentSession, choice

    if state not in ("on", "off"):
        typer.echo("Error: say `on` or `off`.", err=True)
        raise typer.Exit(1)
    with one_line_errors():
        session = AgentSession(open_project(project))
        session.set_proactive_enabled(state == "on")
        if interval is not None:
            seconds = max(float(interval), choice.MIN_PROJECT_INTERVAL)
            session.project.update_settings(
                lambda s: s.with_agents(lambda a: replace(a, proactive_interval_seconds=seconds))
            )
    typer.echo(
        f"Proactive advice is {state}"
        + (f", every {session.proactive_interval:g} s." if state == "on" else ".")
    )
