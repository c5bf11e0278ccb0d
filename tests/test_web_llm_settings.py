"""Issue 12: each agent's provider and model chosen on the page (as `duetml llm use`), and the
page never a way around the endpoint approvals of issue 7 (tests/test_trust.py)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import make_project
from llm_fakes import FakeOllamaServer
from playwright.sync_api import expect
from test_web_browser import serving, show_step
from test_web_newcomer_page import AXE, axe_violations, sideways_overflow
from web_helpers import BASE, PORT, Watch, WebClient

from duetml.agents import choice
from duetml.project import Project
from duetml.settings import AgentLLMChoice
from duetml.web import create_app

KEY = "sk-user-own-key-0123456789abcdefXYZ"
# The `ollama` fixture: the user's own Ollama, with a vision model and a text-only one.
pytestmark = pytest.mark.ollama(
    models={"qwen2.5vl:latest": ["completion", "vision"], "llama3.2:latest": ["completion"]}
)


def _client(root: Path) -> WebClient:
    """The app as `duetml serve` makes it: its agents from the project's settings."""
    return WebClient(create_app(root, port=PORT), base_url=BASE)


def _saved(root: Path, agent: str) -> AgentLLMChoice:
    return Project.open(root).settings.agents.llm(agent)


def test_the_page_lists_ollama_models_and_saves_like_the_cli(
    tmp_path: Path, ollama: FakeOllamaServer
) -> None:
    project = make_project(tmp_path / "p", per_category=2, categories=("hat", "shoes"))
    with _client(project.root) as client:
        settings = client.get("/api/agents/llm").json()
        assert settings["providers"] == ["ollama", "openai", "none"]
        listed = [s for s in settings["ollama"] if s["endpoint"] == ollama.url]
        assert listed and listed[0]["reachable"]
        assert sorted(listed[0]["models"]) == ["llama3.2:latest", "qwen2.5vl:latest"]
        chosen = client.post(
            "/api/agents/llm/choice",
            json={"agent": "proactive", "provider": "ollama", "model": "llama3.2"},
        )
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["agents"]["proactive"]["spec"] == "ollama:llama3.2"
        assert _saved(project.root, "proactive") == AgentLLMChoice("ollama", "llama3.2")
        # The running agents use it at once (duetml.toml re-read), as after `duetml llm use`.
        assert client.get("/api/agents").json()["agents"]["proactive"]["model"] == "llama3.2"
        off = client.post("/api/agents/llm/choice", json={"agent": "both", "provider": "none"})
        assert off.status_code == 200
        assert _saved(project.root, "passive").provider == "none"
        # The CLI's checks: a bad model name is one sentence, and nothing is written.
        before = (project.root / "duetml.toml").read_bytes()
        bad = client.post(
            "/api/agents/llm/choice",
            json={"agent": "passive", "provider": "ollama", "model": "a b;c"},
        )
        assert bad.status_code == 400 and "model" in bad.json()["error"].lower()
        assert (project.root / "duetml.toml").read_bytes() == before
        unknown = client.post(
            "/api/agents/llm/choice", json={"agent": "passive", "provider": "llama"}
        )
        assert unknown.status_code == 400
    log = [json.loads(line) for line in project.log.path.read_text().splitlines()]
    assert [e["provider"] for e in log if e["event"] == "agent_llm_use"] == ["ollama", "none"]


def test_choosing_the_cloud_on_the_page_still_asks_before_anything_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    project = make_project(tmp_path / "p", per_category=2, categories=("hat", "shoes"))
    with _client(project.root) as client:
        answer = client.post(
            "/api/agents/llm/choice",
            json={"agent": "passive", "provider": "openai", "model": "gpt-4o"},
        ).json()
        assert [n["agent"] for n in answer["consent_needed"]] == ["passive"]
        assert answer["consent_needed"][0]["reason"] == "cloud"
        assert answer["agents"]["passive"]["approval_needed"] == "cloud"
        assert choice.approved_endpoints(project.root) == set()
        # The chat refuses (428) before any request: the page then shows its Allow.
        refused = client.post("/api/chat", json={"message": "hello"})
        assert refused.status_code == 428
        assert "`duetml" not in refused.json()["error"]
        assert "Allow for this project" in refused.json()["error"]


def _hostile(root: Path, url: str) -> None:
    """What a sender writes into duetml.toml: their server, on this machine's loopback."""
    sent = AgentLLMChoice(provider="ollama", model="llava", base_url=url)
    Project.open(root).update_settings(
        lambda s: s.with_agents(lambda a: replace(a, passive=sent, proactive=sent))
    )


@pytest.mark.slow
def test_a_project_chosen_endpoint_is_not_approved_or_contacted_by_the_page(
    tmp_path: Path,
) -> None:
    models: dict[str, Any] = {"llava:latest": ["completion", "vision"]}
    with FakeOllamaServer(models=models) as attacker:
        project = make_project(tmp_path / "p", per_category=2, categories=("hat", "shoes"))
        _hostile(project.root, attacker.url)
        with _client(project.root) as client:
            settings = client.get("/api/agents/llm").json()
            assert settings["agents"]["passive"]["approval_needed"] == "project"
            assert "not contacted" in settings["agents"]["passive"]["error"]
            assert "`duetml" not in settings["agents"]["passive"]["error"]
            assert "“Allow for this project”" in settings["agents"]["passive"]["error"]
            # Choosing another model of the same provider keeps the project's endpoint, still
            # unapproved: the page is no way around the approval.
            kept = client.post(
                "/api/agents/llm/choice",
                json={"agent": "passive", "provider": "ollama", "model": "x"},
            ).json()
            assert _saved(project.root, "passive").base_url == attacker.url
            assert kept["agents"]["passive"]["approval_needed"] == "project"
            assert {n["endpoint"] for n in kept["consent_needed"]} == {attacker.url}
            assert choice.approved_endpoints(project.root) == set()
            assert client.post("/api/chat", json={"message": "hi"}).status_code == 428
            assert attacker.requests == []  # not a model list, not a chat, before the Allow
            # Only the user's Allow approves it.
            allowed = client.post("/api/agents/consent", json={"endpoint": attacker.url})
            assert allowed.status_code == 200
        assert choice.approved_endpoints(project.root) == {attacker.url}
        # Switching provider on the page drops the project's address for the default one.
        with _client(project.root) as client:
            client.post("/api/agents/llm/choice", json={"agent": "proactive", "provider": "openai"})
        assert _saved(project.root, "proactive").base_url is None


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1440])
def test_the_settings_panel_in_a_browser(
    tmp_path: Path, ollama: FakeOllamaServer, width: int, browser: Any, watch: Watch
) -> None:
    project = make_project(tmp_path / "p", per_category=2, categories=("hat", "shoes"))
    with serving(project.root) as server:
        # bypass_csp: only so the test can load axe-core into the page (the app never serves it).
        context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
        page = watch.attach(context.new_page())
        page.goto(server.url)
        page.wait_for_selector("body[data-ready=true]")
        if width <= 1000:  # the assistant is a step of its own on a narrow screen
            show_step(page, "chat")
        page.locator("#llm-settings summary").click()
        model = page.locator("#llm-model-proactive")
        expect(model).to_be_visible()
        # The models the user's Ollama has are offered (a datalist), and the server named.
        expect(page.locator("#llm-settings-body")).to_contain_text("qwen2.5vl:latest")
        options = page.locator("#ollama-models option").evaluate_all(
            "(els) => els.map((e) => e.value)"
        )
        assert sorted(options) == ["llama3.2:latest", "qwen2.5vl:latest"]
        assert model.get_attribute("list") == "ollama-models"
        page.select_option("#llm-provider-proactive", "ollama")
        model.fill("llama3.2:latest")
        page.locator("form[data-agent=proactive] button[type=submit]").click()
        expect(page.locator(".toast").last).to_contain_text("now uses ollama:llama3.2:latest")
        assert _saved(project.root, "proactive") == AgentLLMChoice("ollama", "llama3.2:latest")
        # Off: the model box is disabled; the agents line says so without a shell command.
        page.select_option("#llm-provider-passive", "none")
        assert page.locator("#llm-model-passive").is_disabled()
        page.locator("form[data-agent=passive] button[type=submit]").click()
        expect(page.locator("#agent-info")).to_contain_text("choose one in Assistant settings")
        assert "`duetml" not in (page.locator("#assistant").text_content() or "")
        assert sideways_overflow(page) <= 0
        if AXE.exists() or os.environ.get("CI") == "true":  # as test_axe_finds_no_violation
            assert axe_violations(page) == []
        context.close()
    assert _saved(project.root, "passive").provider == "none"
    assert not watch.dialogs, watch.dialogs
