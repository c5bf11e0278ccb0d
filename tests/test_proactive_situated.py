"""The proactive agent is situated: it is told what changed since its last look, waits while a
reply is written (and a moment after) and for the opening question's answer, and does not
repeat advice already shown. Real projects of demo photos; only the LLM is a fake."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from agent_fakes import FakeProvider, all_text
from helpers import DEMO_DATA

from duetml.agents import AgentSession, ProactiveTimer
from duetml.agents import session as session_module
from duetml.agents.proactive import is_repeat, similarity
from duetml.llm import Provider
from duetml.project import Project


def session_for(
    project: Project, passive: Provider | None = None, proactive: Provider | None = None
) -> AgentSession:
    return AgentSession(
        project, passive=passive or FakeProvider(), proactive=proactive or FakeProvider()
    )


@pytest.mark.slow
def test_the_request_says_what_changed_since_the_last_look(demo_project: Project) -> None:
    proactive = FakeProvider().enqueue("First advice about hats.", "Second advice about shoes.")
    session = session_for(demo_project, proactive=proactive)
    session.proactive_pass()
    first = all_text(proactive.history[-1])
    assert "This is your first look at this project" in first
    assert "category=shoes" in first  # the operations so far, one line each

    hat = demo_project.images("train", "hat")[0].rel
    demo_project.move_images([hat], "shoes")
    session.proactive_pass()
    second = all_text(proactive.history[-1])
    assert "What the user did since your last look" in second
    new_part = second.split("What the user did since your last look")[1]
    assert "move_images" in new_part and "add_images" not in new_part
    # The earlier operations are collapsed into one line, with their totals.
    assert "add_images x4: 24 photos into 4 categories" in second
    assert "init" in second.split("collapsed")[1]


@pytest.mark.slow
def test_advice_nearly_the_same_as_shown_advice_is_not_shown_again(demo_project: Project) -> None:
    proactive = FakeProvider().enqueue(
        "Your categories are concrete; would 'tops' and 'bottoms' fit your goal better?",
        "Your categories are very concrete: would tops and bottoms fit the goal better?",
        "Two of your hat photos are really caps seen from behind; check them.",
    )
    session = session_for(demo_project, proactive=proactive)
    assert session.proactive_pass() is not None
    demo_project.add_images("hat", sorted((DEMO_DATA / "hat").glob("*.jpg"))[10:11])
    assert session.proactive_pass() is None and proactive.calls == 2
    demo_project.add_images("hat", sorted((DEMO_DATA / "hat").glob("*.jpg"))[11:12])
    assert str(session.proactive_pass()).startswith("Two of your hat photos")
    results = [e["result"] for e in demo_project.log.recent() if e["event"] == "agent_proactive"]
    assert results == ["advice", "repeat", "advice"]
    shown = [m["content"] for m in session.conversation() if m["kind"] == "proactive"]
    assert len(shown) == 2


def test_similarity_tells_rephrasing_from_new_advice() -> None:
    a = "Your shoes category has only 3 photos; add at least 10 more."
    assert similarity(a, "Your shoes category has only 3 photos: add 10 more at least.") > 0.6
    assert similarity(a, "Hats and caps overlap; decide whether a cap is a hat.") < 0.3
    assert is_repeat(a, ["unrelated", a.upper()]) and not is_repeat(a, [])


@pytest.mark.slow
def test_it_waits_while_a_reply_is_written_and_a_moment_after(
    demo_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "QUIET_AFTER_REPLY", 0.5)
    demo_project.update_settings(lambda s: replace(s, goal="Sort my clothes"))
    gate = threading.Event()
    passive = FakeProvider(gate=gate).enqueue("A slow reply.")
    proactive = FakeProvider().enqueue("Advice.")
    session = session_for(demo_project, passive, proactive)
    timer = ProactiveTimer(session, interval=600)
    reply = threading.Thread(target=lambda: "".join(session.ask_stream("hello")))
    reply.start()
    deadline = time.monotonic() + 5
    while passive.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.waiting_reason() == "a reply is being written"
    assert timer.tick() is None and proactive.calls == 0
    assert timer._delay(first=False) == 1.0  # it looks again soon, not in ten minutes
    gate.set()
    reply.join(5)
    assert session.waiting_reason() == "a reply was just written"
    assert timer.tick() is None and proactive.calls == 0
    time.sleep(0.6)
    assert session.waiting_reason() is None
    assert timer.tick() == "Advice." and proactive.calls == 1
    assert timer._delay(first=False) == 600


def test_it_prefers_to_wait_for_the_answer_to_the_opening_question(
    demo_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "QUIET_AFTER_REPLY", 0.0)
    proactive = FakeProvider().enqueue("Advice.")
    session = session_for(demo_project, FakeProvider().enqueue("Noted."), proactive)
    assert session.waiting_reason() == "the opening question is not answered yet"
    assert ProactiveTimer(session, interval=600).tick() is None and proactive.calls == 0
    monkeypatch.setattr(session_module, "GREETING_PATIENCE", 0.0)
    assert session.waiting_reason() is None  # not forever: after a while it speaks anyway
    monkeypatch.setattr(session_module, "GREETING_PATIENCE", 600.0)
    "".join(session.ask_stream("I want to sort my clothes"))
    assert session.waiting_reason() is None
    assert ProactiveTimer(session, interval=600).tick() == "Advice."
