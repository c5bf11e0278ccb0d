"""The proactive agent pauses while its LLM server does not answer: one failed look in the
interaction log and one error, not one every interval; it resumes by itself once the server
answers (a real OllamaProvider against a dead port, then against a loopback fake Ollama)."""

from __future__ import annotations

import json
from dataclasses import replace

from agent_fakes import FakeProvider
from helpers import free_port
from llm_fakes import FakeOllamaServer

from duetml.agents import AgentSession, ProactiveTimer
from duetml.llm import get_provider
from duetml.project import Project


def proactive_events(project: Project) -> list[dict[str, object]]:
    lines = project.log.path.read_text().splitlines() if project.log.path.exists() else []
    events = [json.loads(line) for line in lines]
    return [e for e in events if e.get("event") == "agent_proactive"]


def test_an_unreachable_server_pauses_the_looks_and_they_resume(demo_project: Project) -> None:
    demo_project.update_settings(lambda s: replace(s, goal="Sort my clothes by type."))
    port = free_port()
    ollama = get_provider("ollama", "qwen2.5vl", base_url=f"http://127.0.0.1:{port}", max_retries=0)
    session = AgentSession(demo_project, passive=FakeProvider(), proactive=ollama)
    session.set_proactive_enabled(True)
    assert session.reachable("proactive")[0] is False
    errors: list[str] = []
    timer = ProactiveTimer(session, interval=600, on_error=lambda e: errors.append(str(e)))

    for _ in range(5):  # five intervals with the server down
        timer.tick()
    assert timer.paused
    assert len(errors) == 1 and "not running" in errors[0]
    failed = [e for e in proactive_events(demo_project) if e.get("result") == "error"]
    assert len(failed) == 1, failed

    with FakeOllamaServer() as server:  # the server is back (here: at another address)
        server.queue_reply("Hats and caps look alike: add more caps.")
        session.proactive_provider = get_provider(
            "ollama", "qwen2.5vl", base_url=server.url, max_retries=0
        )
        assert session.reachable("proactive") == (True, None)
        advice = timer.tick()
    assert not timer.paused
    # mypy keeps `timer.paused` narrowed to True across tick(): the next line is reached.
    assert advice is not None and "caps" in advice  # type: ignore[unreachable]
