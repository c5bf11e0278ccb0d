"""Shared pieces of the web tests: Litestar's TestClient on an app, a live server, raw ASGI
calls, the real AgentSession over fake providers (tests/agent_fakes.py), and Debian's Chromium
with what a page must not do unnoticed. Projects and photos come from tests/helpers.py; the
fixtures built on these live in conftest.py. The bench scripts use them too."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import httpx
from litestar import Litestar
from litestar.testing import TestClient

from duetml.errors import LLMError
from duetml.project import Project

if TYPE_CHECKING:
    from agent_fakes import FakeProvider
    from playwright.sync_api import Browser, Page, Playwright

    from duetml.agents import AgentSession
    from duetml.web.state import WebState

PORT = 8765  # the port the test apps believe they serve (create_app's host check reads it)
BASE = f"http://127.0.0.1:{PORT}"

# Debian's Chromium, as the browser tests and the page benches launch it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium's fake camera is a real video device to the page (a moving test pattern), and the
# second flag answers the permission prompt with "allow".
FAKE_CAMERA = "--use-fake-device-for-media-stream"
ALLOW_CAMERA = "--use-fake-ui-for-media-stream"
TIMEOUT = 30_000  # ms: generous for a loaded 2-core CI machine

AgentsFactory = Callable[[Project], "AgentSession"]
# What fake_agents() makes and the `agents` fixture gives: (factory, passive, proactive).
FakeAgents = tuple[AgentsFactory, "FakeProvider", "FakeProvider"]


class WebClient(TestClient[Litestar]):
    """Litestar's TestClient on a project's app, with what the tests look at beside the
    answers: the project (opened), and the fake providers behind the app's agents."""

    project: Project
    passive: FakeProvider
    proactive: FakeProvider

    @property
    def web(self) -> WebState:
        """The app's own state (its project, agents, training, versions)."""
        state: WebState = self.app.state.duetml
        return state


def launch_chromium(playwright: Playwright, *extra_args: str) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])


@dataclass
class Watch:
    """Everything a page did that a test must not let pass: script dialogs, errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        page.set_default_timeout(TIMEOUT)

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console: {msg.text}")
                if msg.type == "error" and "Failed to load resource" not in msg.text
                else None
            ),
        )
        return page


class LiveServer:
    """A real uvicorn serving the app on 127.0.0.1 in a thread (what the browser talks to)."""

    def __init__(self, app: Any, port: int) -> None:
        from duetml.web.server import DuetmlServer

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = DuetmlServer(app, host="127.0.0.1", port=port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def client_for(port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)


def fake_agents(
    *passive_replies: Any, proactive_replies: tuple[Any, ...] = (), **options: Any
) -> FakeAgents:
    """(factory, passive, proactive): a real AgentSession over two FakeProviders.

    `create_app(root, agents=factory)` makes the session from the app's own Project, so
    the agents log with source "web" like everything else the page does.
    """
    from agent_fakes import FakeProvider

    from duetml.agents import AgentSession

    passive = FakeProvider(**options).enqueue(*passive_replies)
    proactive = FakeProvider(**options).enqueue(*proactive_replies)

    def factory(project: Project) -> AgentSession:
        return AgentSession(project, passive=passive, proactive=proactive)

    return factory, passive, proactive


def dead_llm_error() -> LLMError:
    return LLMError(
        "Ollama is not running at http://127.0.0.1:9: start it with `ollama serve`, "
        "or choose another provider with `duetml llm use passive openai:gpt-4o`."
    )


class RawResponse:
    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, received: int
    ) -> None:
        self.status = status
        self.headers = {k.decode().lower(): v.decode() for k, v in headers}
        self.body = body
        self.received = received  # request body bytes the app pulled before answering

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def asgi_request(
    app: Any,
    method: str,
    path: str,
    headers: list[tuple[str, str]] | None = None,
    body_chunks: Iterable[bytes] = (),
    query: str = "",
) -> RawResponse:
    """One request straight into the ASGI app, with exactly the headers given (or none).

    TestClient always adds a Host; DNS-rebinding and body-limit tests need full control,
    and `received` tells how much of the body the app read before it answered.
    """
    import asyncio

    chunks = iter(body_chunks)
    received = 0
    sent: dict[str, Any] = {"status": 0, "headers": [], "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal received
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        received += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }
    # In a thread of its own: Playwright's sync API may own this thread's event loop.
    worker = threading.Thread(target=asyncio.run, args=(app(scope, receive, send),))
    worker.start()
    worker.join()
    return RawResponse(sent["status"], sent["headers"], sent["body"], received)
