"""Optional: a real Ollama, when one answers on this machine. Never in CI.

Runs only if `OLLAMA_HOST` (default http://127.0.0.1:11434) answers and has a vision model
installed; otherwise every test here is skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import demo_photos

from duetml.llm import ChatMessage, ImageInput, get_provider

pytestmark = pytest.mark.live_llm


@pytest.fixture(scope="module")
def vision_model() -> str:
    if os.environ.get("CI") == "true":
        pytest.skip("live LLM tests never run in CI")
    provider = get_provider("ollama", max_retries=0)
    try:
        models = provider.list_models()
    except Exception as exc:  # noqa: BLE001 - any failure means "no live Ollama here"
        pytest.skip(f"no Ollama reachable: {exc}")
    for model in models:
        if get_provider("ollama", model.name, max_retries=0).model_info().vision:
            return model.name
    pytest.skip("Ollama has no vision model installed (e.g. `ollama pull qwen2.5vl`)")


def test_a_real_vision_model_sees_a_shoe(vision_model: str) -> None:
    provider = get_provider("ollama", vision_model)
    photo = ImageInput.from_bytes(demo_photos("shoes")[0].read_bytes())
    reply = provider.chat(
        [ChatMessage("user", "What piece of clothing is this? Answer in one word.", images=[photo])]
    )
    assert any(word in reply.lower() for word in ("shoe", "sneaker", "boot", "footwear", "trainer"))


def test_the_assistant_answers_about_a_real_project(vision_model: str, trained_demo: Path) -> None:
    from duetml.agents import AgentSession
    from duetml.project import Project

    session = AgentSession(Project.open(trained_demo), passive=get_provider("ollama", vision_model))
    reply = "".join(session.ask_stream("", about="data"))
    assert len(reply) > 20
    assert session.conversation()[-1]["content"] == reply
