"""A proposal in the page's chat: the agent's tool call becomes a button, the click applies it
as one operation, and Undo reverts it. Real page in headless Chromium, real ollama client
against the loopback Ollama server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import make_project
from llm_fakes import FakeOllamaServer
from test_web_browser import ollama_settings, open_page, serving, wait_count
from web_helpers import Watch

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_proposal_button_applies_the_change_and_undo_reverts_it(
    browser: Any,
    watch: Watch,
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path / "proposal", per_category=4, categories=("hat", "shoes"))
    hats = [r.rel for r in project.images("train", "hat")[:2]]
    tools_model = {"qwen2.5vl:latest": ["completion", "vision", "tools"]}
    with FakeOllamaServer(tools_model) as ollama:
        ollama_settings(project, ollama.url)
        move = {"action": "move", "photos": hats, "to": "shoes", "reason": "they show shoes"}
        ollama.queue_tool_calls([("propose_change", move)], text="Two of your hats are shoes.")
        with serving(project.root) as server:
            context, page = open_page(browser, server.url, watch)
            page.fill("#chat-input", "Is anything misfiled?")
            page.press("#chat-input", "Enter")
            button = page.get_by_role("button", name="Move 2 photos from hat to shoes")
            button.wait_for()
            assert len(project.images("train", "hat")) == 4  # nothing applied before the click
            # Each photo it touches is shown beside it, to look at before applying it.
            shown = page.locator(".proposal-photos img")
            assert shown.count() == 2
            page.wait_for_function(
                "() => [...document.querySelectorAll('.proposal-photos img')]"
                ".every((img) => img.naturalWidth > 0)"
            )
            page.locator(".proposals").screenshot(path=str(tmp_path / "proposal.png"))
            button.click()
            wait_count(page, "shoes", 6)
            wait_count(page, "hat", 2)
            page.get_by_role("button", name="✓ Move 2 photos from hat to shoes").wait_for()
            assert page.get_by_role(
                "button", name="✓ Move 2 photos from hat to shoes"
            ).is_disabled()
            page.click("#undo-btn")
            wait_count(page, "hat", 4)
            wait_count(page, "shoes", 4)
            context.close()
    assert set(hats) <= {r.rel for r in project.images("train", "hat")}  # back where they were
    applied = [e for e in project.log.recent() if e["event"] == "apply_suggestion"]
    assert applied and applied[-1]["origin"] == "proposal"
    assert not watch.dialogs and not watch.errors, (watch.dialogs, watch.errors)
