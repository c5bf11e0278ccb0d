"""Endpoints parsed strictly and approvals keyed on the server the HTTP client reaches
(issue 17, item 2), with the real openai and ollama clients against loopback servers.

The attack: `base_url = "http://127.0.0.1:+18002/v1"` was accepted by the settings check and
by httpx (port 18002) but shown as "(invalid URL)", which `duetml llm approve` stored; the
project then switched to another server's "+port" URL, also "(invalid URL)", so it counted as
approved and received the key and the photos.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from helpers import invoke_duetml, make_project
from llm_fakes import FakeOllamaServer, FakeOpenAIServer

from duetml.agents import choice
from duetml.llm.privacy import DEFAULT_PORTS, parse_endpoint
from duetml.project import Project
from duetml.settings import AgentLLMChoice

KEY = "sk-user-own-key-0123456789abcdefXYZ"


def point_at(root: Path, url: str, provider: str = "openai") -> None:
    """What a hostile sender writes into duetml.toml (unchecked, as a text editor would)."""
    model = "gpt-4o" if provider == "openai" else "qwen2.5vl"
    sent = AgentLLMChoice(provider=provider, model=model, base_url=url)
    Project.open(root).update_settings(
        lambda s: s.with_agents(lambda a: replace(a, passive=sent, proactive=sent))
    )


@pytest.fixture
def received(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return make_project(tmp_path / "received", per_category=2, categories=["hat", "shoes"]).root


def test_a_plus_port_is_refused_and_its_approval_reaches_no_other_server(
    received: Path, duetml_home: Path
) -> None:
    with (
        FakeOpenAIServer(models=["gpt-4o"]) as first,
        FakeOpenAIServer(models=["gpt-4o"]).on("127.0.0.2") as second,
    ):
        point_at(received, f"http://127.0.0.1:+{first.port}/v1")
        approved = invoke_duetml("llm", "approve", "-p", str(received))
        assert "Traceback" not in approved.output
        assert "(invalid URL)" not in approved.output
        assert "URL duetml can use" in approved.output
        assert choice.approved_endpoints(received) == set()
        asked = invoke_duetml("ask", "hello", "-p", str(received))
        assert asked.exit_code != 0 and "URL duetml can use" in asked.stderr
        assert len(asked.stderr.strip().splitlines()) == 1

        # An approval file from before (the "(invalid URL)" entry) approves nothing,
        # and the other server's "+port" URL is refused as well: it receives nothing.
        (duetml_home / choice.APPROVALS_FILE).write_text(
            json.dumps(
                {
                    "format": 1,
                    "approvals": [
                        {"project": choice.project_key(received), "endpoint": "(invalid URL)"}
                    ],
                }
            )
        )
        assert choice.approved_endpoints(received) == set()
        point_at(received, f"http://127.0.0.2:+{second.port}/v1")
        asked = invoke_duetml("ask", "hello", "-p", str(received))
        assert asked.exit_code != 0
        point_at(received, second.url)
        asked = invoke_duetml("ask", "hello", "-p", str(received))
        assert asked.exit_code == 7 and "duetml llm approve" in asked.stderr
        assert first.requests == [] and second.requests == []


def test_approvals_go_by_scheme_host_and_port(received: Path) -> None:
    with (
        FakeOpenAIServer(models=["gpt-4o"]) as server,
        FakeOpenAIServer(models=["gpt-4o"]).on("127.0.0.2") as other,
    ):
        point_at(received, server.url)
        assert invoke_duetml("llm", "approve", "-p", str(received)).exit_code == 0
        # The same server spelled otherwise (case, a trailing slash, another path): approved.
        for same in (
            f"HTTP://127.0.0.1:{server.port}/v1/",
            f"http://127.0.0.1:{server.port}/other/v1",
        ):
            point_at(received, same)
            assert choice.pending_approvals(Project.open(received)) == [], same
        # Another port, another loopback address, https, or "localhost" for it: asked again.
        for another in (
            f"http://127.0.0.1:{other.port}/v1",
            other.url,
            f"https://127.0.0.1:{server.port}/v1",
            f"http://localhost:{server.port}/v1",
        ):
            point_at(received, another)
            assert [n["reason"] for n in choice.pending_approvals(Project.open(received))] == [
                "project",
                "project",
            ], another
            asked = invoke_duetml("ask", "hello", "-p", str(received))
            assert asked.exit_code == 7, another
        assert other.requests == []
        server.queue_reply("the approved one")
        point_at(received, f"http://127.0.0.1:{server.port}/v1/")
        asked = invoke_duetml("ask", "hello", "-p", str(received))
        assert asked.exit_code == 0 and asked.stdout == "the approved one\n"
        assert server.chat_requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_ollama_refuses_an_unparsable_host_rather_than_guess_a_port(
    received: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOllamaServer() as server:
        point_at(received, f"http://127.0.0.1:+{server.port}", provider="ollama")
        asked = invoke_duetml("ask", "hello", "-p", str(received))
        assert asked.exit_code != 0 and "URL duetml can use" in asked.stderr
        point_at(received, "", provider="ollama")
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:+{server.port}")
        asked = invoke_duetml("ask", "hello", "-p", str(received))
        assert asked.exit_code != 0 and "URL duetml can use" in asked.stderr
        assert "Traceback" not in asked.output
        assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:+18002/v1",
        "http://127.0.0.1:018002/v1",
        "http://127.0.0.1: 80/v1",
        "http://127.1:8080/v1",
        "http://0x7f.0.0.1:8080",
        "http://2130706433:8080",
        "http://0177.0.0.1:8080",
        "http://127.0.0.1%2e:8080",
        "http://user:pw@127.0.0.1:8080",
        "http://127.0.0.1:8080\\@evil.example/v1",
        "http://127.0.0.1:8080#@evil.example",
        "http://127.0.0.1:8080?@evil.example",
        "http://[::1%25eth0]:8080",
        "http://127.0.0.1:65536",
        "http://127.0.0.1:0",
        "ftp://127.0.0.1:21",
        "http://127.0.0.1:8080/v1",
        "https://api.openai.com/v1",
        "http://[::1]:11434",
        "http://LOCALHOST:11434/",
        "http://xn--bcher-kva.example:8080",
    ],
)
def test_what_parses_is_what_httpx_reaches(url: str) -> None:
    """Either refused, or the same scheme, host and port as the HTTP client will use."""
    try:
        endpoint = parse_endpoint(url)
    except ValueError:
        return
    seen = httpx.URL(url)
    port = seen.port or DEFAULT_PORTS[seen.scheme]
    wire = seen.raw_host.decode("ascii")  # the name as sent (punycode, not its display form)
    host = f"[{wire}]" if ":" in wire else wire
    assert (endpoint.scheme, endpoint.host, endpoint.port) == (seen.scheme, host, port)
    assert not seen.userinfo and not seen.query and not seen.fragment


# ----- item 3: no redirect to another origin ------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "ollama"])
@pytest.mark.parametrize("elsewhere", ["another address", "another port"])
def test_a_redirect_to_another_server_sends_it_nothing(
    received: Path, provider: str, elsewhere: str
) -> None:
    """The chosen loopback server answers 307 (which repeats the body) towards another
    origin: that one receives nothing, not the photos and not the key, and the user gets one
    sentence. httpx would follow it (the key stripped, the 385 KB of photos not)."""
    fake = FakeOpenAIServer if provider == "openai" else FakeOllamaServer
    spec = "openai:gpt-4o" if provider == "openai" else "ollama:qwen2.5vl"
    with (
        fake() as chosen,
        fake().on("127.0.0.2" if elsewhere == "another address" else "127.0.0.1") as other,
    ):
        used = invoke_duetml(
            "llm", "use", "both", spec, "--base-url", chosen.url, "-p", str(received)
        )
        assert used.exit_code == 0, used.output
        target = other.url.removesuffix("/v1")
        for endpoint in ("chat", "models", "show"):
            path = "/v1/chat/completions" if provider == "openai" else "/api/chat"
            chosen.queue_status(
                307, headers={"Location": f"{target}{path}"}, endpoint=endpoint, times=5
            )
        asked = invoke_duetml("ask", "what do you see?", "-p", str(received))
        assert asked.exit_code != 0
        assert "Traceback" not in asked.output
        message = asked.stderr.strip()
        assert len(message.splitlines()) == 1, message
        assert "redirect" in message and other.url.removesuffix("/v1") in message
        assert "nothing was sent there" in message
        assert chosen.requests, "the chosen server was asked"
        assert other.requests == []


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_a_redirect_on_the_same_server_is_followed(received: Path, provider: str) -> None:
    """A redirect within the server (same scheme, host and port) is not a new recipient."""
    fake = FakeOpenAIServer if provider == "openai" else FakeOllamaServer
    spec = "openai:gpt-4o" if provider == "openai" else "ollama:qwen2.5vl"
    with fake() as chosen:
        assert (
            invoke_duetml(
                "llm", "use", "both", spec, "--base-url", chosen.url, "-p", str(received)
            ).exit_code
            == 0
        )
        path = "/v1/chat/completions" if provider == "openai" else "/api/chat"
        chosen.queue_status(307, headers={"Location": f"{path}?again=1"})
        chosen.queue_reply("a hat")
        asked = invoke_duetml("ask", "what do you see?", "-p", str(received))
        assert asked.exit_code == 0, asked.output
        assert asked.stdout == "a hat\n"
