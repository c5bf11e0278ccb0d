"""Shared pieces of the web tests: a live server, raw ASGI calls, and the real AgentSession
over fake providers (tests/agent_fakes.py). Projects and photos come from tests/helpers.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Self

import httpx

from duetml.errors import LLMError
from duetml.project import Project


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


def fake_agents(*passive_replies: Any, proactive_replies: tuple = (), **options: Any):
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
    body_chunks: Iterator[bytes] | list[bytes] = (),
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
