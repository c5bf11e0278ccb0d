"""New settings while the assistant writes a reply (`duetml llm use`, the page's settings) must
not confuse the proactive agent's wait: it waits while the reply is written and not after.
Before the session's split, refresh() reset the count of replies being written, so the reply's
end left it at -1 and the proactive agent waited for ever."""

from __future__ import annotations

import threading
import time

import pytest
from agent_fakes import FakeProvider

from duetml.agents import AgentSession
from duetml.agents import session as session_module
from duetml.project import Project

pytestmark = pytest.mark.usefixtures("clean_env")


def test_a_refresh_during_a_reply_leaves_the_wait_right(
    demo_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "QUIET_AFTER_REPLY", 0.0)
    gate = threading.Event()
    passive = FakeProvider(gate=gate).enqueue("A slow reply.")
    session = AgentSession(demo_project, passive=passive, proactive=FakeProvider())
    reply = threading.Thread(target=lambda: "".join(session.ask_stream("hello")))
    reply.start()
    deadline = time.monotonic() + 10
    while passive.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert passive.calls == 1
    session.refresh()  # the settings changed while the reply is being written
    assert session.waiting_reason(patient=False) == "a reply is being written"
    gate.set()
    reply.join(10)
    assert not reply.is_alive()
    assert session.waiting_reason(patient=False) is None
