"""serve: the web page, on this machine only unless --host says otherwise (then with a token)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from duetml.cli.app import ProjectOption, app, fail, open_project

if TYPE_CHECKING:
    from duetml.project import Project

DEFAULT_PORT = 8765


@app.command()
def serve(
    project: ProjectOption = Path("."),
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            help=f"Port to listen on (default {DEFAULT_PORT}, or the next free one).",
            min=1,
            max=65535,
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Keep 127.0.0.1 unless you know why not: on any other "
            "address the page asks for the token in the printed link.",
        ),
    ] = "127.0.0.1",
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in your browser.")
    ] = True,
    baseline: Annotated[
        bool,
        typer.Option("--baseline", help="The same page without any assistant (for user studies)."),
    ] = False,
    study: Annotated[
        Path | None,
        typer.Option(
            "--study",
            help="A study folder (duetml study init): serve a participant's "
            "session in their condition, with the task bar and questionnaires.",
        ),
    ] = None,
    participant: Annotated[
        str | None, typer.Option("--participant", help="The participant, like P07 (with --study).")
    ] = None,
) -> None:
    """Open the web page: sort photos, train, try the model, talk to the assistant."""
    from duetml.web import create_app

    host = host.strip()
    if _is_wildcard(host):
        fail(
            f"--host {host} would show your photos to every machine on the network: "
            "give the one address to listen on (e.g. --host 192.168.1.5), or keep 127.0.0.1."
        )
    if study is not None or participant is not None:  # --- a user study's session ---
        from duetml.cli.study_cmds import serve_session

        serve_session(study, participant, host, port, open_browser)
        return
    opened = open_project(project)  # a clear "not a project" before anything starts
    if not baseline:
        _say_what_waits_for_approval(opened)
    chosen = _choose_port(host, port)
    on_network = not _is_loopback(host)
    # Off loopback, anyone on the network could connect: every request must carry a token
    # that only this terminal has seen, as Jupyter does.
    token = secrets.token_urlsafe(24) if on_network else None
    extra_hosts = [host] if host not in ("127.0.0.1", "localhost", "::1") else []
    web_app = create_app(
        project, baseline=baseline, allowed_hosts=extra_hosts, port=chosen, token=token
    )
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{chosen}/" + (f"?token={token}" if token else "")
    if on_network:
        typer.echo(
            f"Warning: --host {host} makes duetml reachable from other machines on the network; "
            "anyone who has the link below can see, change and delete this project's photos. "
            "Share it only with people you trust, and stop duetml (Ctrl-C) when you are done.",
            err=True,
        )
    typer.echo(
        f"duetml is serving {Path(project).resolve().name} at {url}"
        + (" (baseline: no assistant)" if baseline else "")
    )
    run_until_stopped(web_app, host, chosen, url, open_browser)


def run_until_stopped(web_app: Any, host: str, port: int, url: str, open_browser: bool) -> None:
    """Serve ``web_app`` until Ctrl-C (`duetml serve`, and the study's pages)."""
    from duetml.web.server import DuetmlServer

    typer.echo("Press Ctrl-C to stop.")
    server = DuetmlServer(web_app, host=host, port=port)
    if open_browser:
        # After the socket is listening, so the browser never sees "connection refused".
        def _open_when_ready() -> None:
            for _ in range(100):
                if server.started:
                    webbrowser.open(url)
                    return
                threading.Event().wait(0.1)

        threading.Thread(target=_open_when_ready, daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the Ctrl-C it handled; stopping is the normal way to end
    typer.echo("Stopped.")


def _say_what_waits_for_approval(project: Project) -> None:
    from duetml.agents import choice
    from duetml.errors import DuetmlError

    try:
        pending = choice.pending_approvals(project)
    except DuetmlError:
        return  # the page shows settings problems itself
    for need in pending:
        typer.echo(
            choice.describe_need(need["agent"], need["endpoint"], need["reason"])
            + " Nothing is sent there until you allow it on the page or with "
            "`duetml llm approve`.",
            err=True,
        )


def _choose_port(host: str, port: int | None) -> int:
    from duetml.web.server import free_port, port_is_free

    if port is None:
        chosen = free_port(host, DEFAULT_PORT)
        if chosen is None:
            fail(f"No free port near {DEFAULT_PORT}: choose one with --port N.")
        return chosen
    if not port_is_free(host, port):
        fail(
            f"Port {port} on {host} is in use (another duetml serve?): "
            "choose another with --port N."
        )
    return port


def _is_loopback(host: str) -> bool:
    """Whether only this machine can connect: 127.0.0.0/8, ::1 or localhost (never DNS)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    """Whether listening on `host` listens on every interface, in any spelling the resolver
    reads as 0.0.0.0 or :: ("0", "0x0", "0.0", "::ffff:0.0.0.0"): asked of getaddrinfo, which
    the server's bind uses too."""
    if host.strip("[]") in ("", "*"):
        return True
    try:
        found = socket.getaddrinfo(
            host.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError):
        return False  # cannot be bound either: the server says so when it starts
    for *_, address in found:
        try:
            parsed = ipaddress.ip_address(str(address[0]).split("%")[0])
        except ValueError:
            continue
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        if parsed.is_unspecified:
            return True
    return False
