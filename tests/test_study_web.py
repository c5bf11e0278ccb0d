"""A participant's session through the page's API (Litestar's TestClient, no socket): the
condition decides the page, consent comes first, every event carries its task, the next task
is another project, and nothing of one participant is reachable from another's session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos
from litestar.testing import TestClient
from web_helpers import fake_agents

from duetml.project import Project
from duetml.study.design import Study, init_study
from duetml.study.items import UQ
from duetml.web.routes_study import create_session_app

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"


def by_condition(study: Study, condition: str) -> str:
    return next(p.id for p in study.design.participants if p.condition == condition)


@pytest.fixture
def study(tmp_path: Path) -> Study:
    return init_study(tmp_path / "study", 4, seed=7)


def session_client(study: Study, pid: str, agents: Any = None) -> TestClient[Any]:
    app = create_session_app(study.root, pid, agents=agents, port=PORT)
    return TestClient(app, base_url=BASE)


def upload(client: TestClient[Any], category: str, photos: list[Path]) -> None:
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    client.post("/api/categories/add", json={"name": category}).raise_for_status()
    client.post(f"/api/upload?category={category}", files=files).raise_for_status()


def test_a_baseline_session_has_no_agent_feature(study: Study) -> None:
    pid = by_condition(study, "baseline")
    with session_client(study, pid) as client:
        page = client.get("/").text
        assert "/static/js/study-bar.js" in page and "/static/study.css" in page
        assert 'id="assistant"' not in page and 'data-ask="data"' not in page
        assert client.get("/api/project").json()["baseline"] is True
        assert client.get("/api/agents").status_code == 404
        assert client.get("/static/js/study-bar.js").status_code == 200


def test_an_agents_session_has_the_assistant(study: Study) -> None:
    pid = by_condition(study, "agents")
    factory, _, _ = fake_agents()
    with session_client(study, pid, factory) as client:
        page = client.get("/").text
        assert 'id="assistant"' in page and 'data-ask="data"' in page
        info = client.get("/api/project").json()
        assert info["baseline"] is False and info["agents"] is True


def test_the_proactive_agent_waits_while_the_task_is_not_running(study: Study) -> None:
    pid = by_condition(study, "agents")
    factory, _, _ = fake_agents()
    app = create_session_app(study.root, pid, agents=factory, port=PORT)
    with TestClient(app, base_url=BASE) as client:
        agents = app.task_app.state.duetml.agents
        assert agents.waiting_reason() == "the study task is not running"  # consent
        client.post("/api/study/consent").raise_for_status()
        client.post("/api/study/start").raise_for_status()
        assert agents.waiting_reason() != "the study task is not running"
        client.post("/api/study/pause").raise_for_status()
        assert agents.waiting_reason() == "the study task is not running"


def test_unprompted_advice_comes_only_while_the_task_runs_and_carries_it(study: Study) -> None:
    from dataclasses import replace

    from duetml.agents import ProactiveTimer

    pid = by_condition(study, "agents")
    free = Project.open(study.task_project(pid, "free"))
    free.update_settings(lambda s: replace(s, goal="sort animal photos"))  # no greeting wait
    free.add_images("cats", demo_photos("hat", 2))
    factory, _, proactive = fake_agents(proactive_replies=("Add a category for birds.",))
    app = create_session_app(study.root, pid, agents=factory, port=PORT)
    with TestClient(app, base_url=BASE) as client:
        client.post("/api/study/consent").raise_for_status()
        client.post("/api/study/start").raise_for_status()
        client.post("/api/study/finish").raise_for_status()  # the practice; now free is ready
        timer = ProactiveTimer(app.task_app.state.duetml.agents)
        assert timer.tick() is None and proactive.calls == 0  # ready: not yet
        client.post("/api/study/start").raise_for_status()
        assert timer.tick() == "Add a category for birds." and proactive.calls == 1
        client.post("/api/study/pause").raise_for_status()
        assert timer.tick() is None and proactive.calls == 1  # paused: nothing sent
    advice = [e for e in free.log.recent(100) if e["event"] == "agent_proactive"]
    assert [(e["result"], e["task"], e["participant"]) for e in advice] == [("advice", "free", pid)]
    from duetml.study.activity import task_activity

    counted = task_activity(study, pid, "free")
    assert counted["proactive_advice"] == 1 and counted["agent_messages"] == 1
    assert counted["questions_chat"] == 0


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
def test_serve_study_on_the_command_line(study: Study) -> None:
    import subprocess
    import sys
    import time

    import httpx
    from helpers import free_port

    port = free_port()
    pid = by_condition(study, "baseline")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from duetml.cli import main; main()",
            "serve",
            "--study",
            str(study.root),
            "--participant",
            pid,
            "--port",
            str(port),
            "--no-open",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                got = httpx.get(f"http://127.0.0.1:{port}/api/study/session", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr
                time.sleep(0.2)
        assert got.json()["participant"] == pid and got.json()["baseline"] is True
        assert "study-bar.js" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=20)
    assert f"Serving {pid}'s session (baseline)" in out
    from helpers import run_duetml

    alone = run_duetml("serve", "--participant", pid, "--no-open")
    assert alone.returncode != 0 and "--study DIR" in alone.stderr


def test_a_session_from_consent_to_the_next_task(study: Study) -> None:
    pid = by_condition(study, "agents")
    factory, passive, _ = fake_agents("Hats and shoes look fine.")
    with session_client(study, pid, factory) as client:
        state = client.get("/api/study/session").json()
        assert state["phase"] == "consent" and "Withdraw" in state["consent"]
        refused = client.post("/api/study/start")
        assert refused.status_code == 400 and "agreed" in refused.json()["error"]
        client.post("/api/study/consent").raise_for_status()
        state = client.post("/api/study/start").json()
        assert state["phase"] == "running" and state["serving"] == "practice"
        client.post("/api/study/finish").raise_for_status()  # practice: no questions
        state = client.get("/api/study/session").json()
        assert state["phase"] == "ready" and state["serving"] == "free"
        assert client.get("/api/project").json()["name"] == "free"  # the next project
        client.post("/api/study/start").raise_for_status()
        upload(client, "hats", demo_photos("hat", 3))
        chat = client.post("/api/chat", json={"message": "Is my data fine?"})
        assert chat.status_code == 200 and "fine" in chat.text
        assert client.post("/api/study/pause").json()["phase"] == "paused"
        client.post("/api/study/resume").raise_for_status()
        state = client.post("/api/study/finish").json()
        assert [q["id"] for q in state["questionnaires"]] == ["UQ", "UMUX"]
        bad = client.post("/api/study/answers/submit", json={"UQ1": 4})
        assert bad.status_code == 400 and "UQ2" in bad.json()["error"]
        answers = {**{i.id: 5 for i in UQ.items}, "UMUX1": 6, "UMUX2": 7}
        state = client.post("/api/study/answers/submit", json=answers).json()
        assert state["serving"] == "requirement" and state["phase"] == "ready"
    events = Project.open(study.task_project(pid, "free")).log.recent(100)
    names = [e["event"] for e in events]
    for name in (
        "study_task_started",
        "add_category",
        "add_images",
        "agent_ask",
        "study_paused",
        "study_resumed",
        "study_task_ended",
        "study_answers",
    ):
        assert name in names
    assert all(e["task"] == "free" and e["participant"] == pid for e in events)
    ask = next(e for e in events if e["event"] == "agent_ask")
    assert ask["proposals"] == 0 and ask["source"] == "web"
    assert passive.calls == 1


def test_nothing_of_another_participant_is_reachable(study: Study) -> None:
    one, two = study.design.participants[0].id, study.design.participants[1].id
    theirs = Project.open(study.task_project(two, "practice"))
    theirs.add_images("secret", demo_photos("hat", 1))
    rel = theirs.images()[0].rel
    with session_client(study, one) as client:
        client.post("/api/study/consent").raise_for_status()
        client.post("/api/study/start").raise_for_status()
        assert client.get("/api/categories").json()["categories"] == []
        for path in (
            f"../../{two}/practice/{rel}",
            f"/{theirs.root}/{rel}",
            f"..%2F..%2F{two}%2Fpractice%2F{rel}",
        ):
            got = client.get("/api/image", params={"image": path})
            assert got.status_code in (400, 404), path
        # The study API names no participant: an id in the path is no route.
        assert client.post(f"/api/study/{two}/withdraw").status_code in (404, 405)
        assert client.get("/api/study/session").json()["participant"] == one
    assert Study.open(study.root) and not (study.participant_dir(two) / "session.json").exists()
