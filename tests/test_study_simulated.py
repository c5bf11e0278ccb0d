"""A simulated study of 8 scripted participants, end to end: `study init` on the CLI, each
session through the page's API (agents on the loopback Ollama server, a tool call applied as
a proposal), some operations through the CLI, questionnaires posted as a participant would,
one participant withdrawing, three raters on the raters' API, then `study report`, `study
replay` and `study export` on the CLI. Real photos from the demo set."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos, run_duetml
from litestar.testing import TestClient
from llm_fakes import FakeOllamaServer
from scipy import stats
from test_web_browser import ollama_settings

from duetml.project import Project
from duetml.study.design import Study
from duetml.study.items import EQ, UQ
from duetml.web.routes_study import create_rating_app, create_session_app

PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
TOOLS_MODEL = {"qwen2.5vl:latest": ["completion", "vision", "tools"]}
WITHDRAWS = "P08"


def upload(client: TestClient[Any], category: str, photos: list[Path]) -> None:
    client.post("/api/categories/add", json={"name": category}).raise_for_status()
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    client.post(f"/api/upload?category={category}", files=files).raise_for_status()


def answer(client: TestClient[Any], condition: str, score: int) -> dict[str, Any]:
    answers = {"UMUX1": score + 1, "UMUX2": score + 2}
    if condition == "agents":
        answers |= {i.id: score for i in UQ.items}
    response = client.post("/api/study/answers/submit", json=answers)
    response.raise_for_status()
    answered: dict[str, Any] = response.json()
    return answered


def run_participant(study: Study, pid: str, ollama: FakeOllamaServer, n: int) -> None:
    condition = study.design.participant(pid).condition
    agents = condition == "agents"
    if agents:  # the experimenter's set-up: this participant's assistant is the local model
        for task in study.design.tasks:
            ollama_settings(Project.open(study.task_project(pid, task.id)), ollama.url)
    app = create_session_app(study.root, pid, port=PORT)
    with TestClient(app, base_url=BASE) as client:
        client.post("/api/study/consent").raise_for_status()
        client.post("/api/study/start").raise_for_status()
        upload(client, "hat", demo_photos("hat", 2))
        client.post("/api/study/finish").raise_for_status()
        # Task 1 (free).
        client.post("/api/study/start").raise_for_status()
        upload(client, "shoes", demo_photos("shoes", 3, skip=n % 3))
        upload(client, "pants", demo_photos("pants", 3))
        if agents:
            photo = Project.open(study.task_project(pid, "free")).images("train", "pants")[0].rel
            move = {"action": "move", "photos": [photo], "to": "shoes", "reason": "a shoe"}
            ollama.queue_tool_calls([("propose_change", move)], text="One pant is a shoe.")
            reply = client.post("/api/chat", json={"message": "Anything wrong?"})
            assert reply.status_code == 200, reply.text
            proposals = client.get("/api/conversation").json()
            number = [p for m in proposals["messages"] for p in m.get("proposals") or []]
            if n % 2 == 0:  # half of them apply it
                client.post(
                    "/api/proposals/apply", json={"proposal": str(number[-1]["number"])}
                ).raise_for_status()
        client.post("/api/study/pause").raise_for_status()
        client.post("/api/study/resume").raise_for_status()
        client.post("/api/study/finish").raise_for_status()
        state = answer(client, condition, 3 + (1 if agents else 0) + n % 2)
        assert state["serving"] == "requirement"
        # Task 2 (requirement): the page and the CLI side by side.
        client.post("/api/study/start").raise_for_status()
        upload(client, "worn-on-head", demo_photos("hat", 3, skip=2))
        project = study.task_project(pid, "requirement")
        made = run_duetml(
            "add", "worn-on-feet", *map(str, demo_photos("shoes", 3)), "-p", str(project), "--new"
        )
        assert made.returncode == 0, made.stderr
        if agents:  # the scripted agents participants end with a finer scheme
            upload(client, "worn-on-legs", demo_photos("pants", 3, skip=3))
            ollama.queue_reply("Your categories follow how things are worn: good.")
            assert client.post("/api/chat", json={"message": "Is this good?"}).status_code == 200
        if pid == WITHDRAWS:
            assert client.post("/api/study/withdraw").json()["phase"] == "withdrawn"
            return
        client.post("/api/study/finish").raise_for_status()
        assert answer(client, condition, 2 + (2 if agents else 0))["phase"] == "done"


def rate_as(study: Study, rater: str, strict: int) -> list[str]:
    """A rater's scripted judgement, from what they see only: more categories, more cover."""
    app = create_rating_app(study.root, port=PORT)
    with TestClient(app, base_url=BASE) as client:
        assert "Rate the training data" in client.get("/").text
        queue = client.get(f"/api/rate/{rater}").json()
        text = json.dumps(queue)
        assert not any(p.id in text for p in study.design.participants)  # blind
        assert "agents" not in text and "baseline" not in text
        first = queue["data"][0]["categories"][0]["photos"][0]
        thumb = client.get(first)
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
        for entry in queue["data"]:
            size = len(entry["categories"])
            ratings = {
                i.id: max(1, min(5, size + 1 - strict + (k % 2))) for k, i in enumerate(EQ.items)
            }
            client.post(f"/api/rate/{rater}/{entry['code']}", json=ratings).raise_for_status()
        bad = client.post(f"/api/rate/{rater}/{queue['data'][0]['code']}", json={"EQ1": 6})
        assert bad.status_code == 400 and "EQ1" in bad.json()["error"]
        return [d["code"] for d in queue["data"]]


@pytest.mark.slow
def test_a_simulated_study_of_eight_participants(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    made = run_duetml("study", "init", str(folder), "--participants", "8", "--seed", "2024")
    assert made.returncode == 0 and "4 agents, 4 baseline" in made.stdout, made.stderr
    study = Study.open(folder)
    with FakeOllamaServer(TOOLS_MODEL) as ollama:
        for n, p in enumerate(study.design.participants):
            run_participant(study, p.id, ollama, n)
    status = json.loads(run_duetml("study", "status", str(folder), "--json").stdout)
    assert [s["phase"] for s in status].count("done") == 7
    assert next(s for s in status if s["participant"] == WITHDRAWS)["withdrawn"]

    orders = [rate_as(study, rater, strict) for rater, strict in (("R1", 0), ("R2", 1), ("R3", 0))]
    assert sorted(orders[0]) == sorted(orders[1]) and len(orders[0]) == 7  # withdrawn: not rated
    assert orders[0] != orders[1] or orders[1] != orders[2]

    result = run_duetml("study", "report", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["withdrawn"] == [WITHDRAWS]
    assert sum(len(v) for v in report["participants"].values()) == 7
    eq4 = next(i for i in report["items"] if i["item"] == "EQ4")
    agents_values = eq4["by_condition"]["agents"]["values"]
    baseline_values = eq4["by_condition"]["baseline"]["values"]
    expected = stats.mannwhitneyu(agents_values, baseline_values, alternative="two-sided")
    assert eq4["test"]["U"] == expected.statistic
    assert eq4["by_condition"]["agents"]["median"] > eq4["by_condition"]["baseline"]["median"]
    assert report["agreement"]["EQ1"]["raters"] == 3
    free = {a["participant"]: a for a in report["activity"] if a["task"] == "free"}
    for pid, a in free.items():
        if study.design.participant(pid).condition == "agents":
            assert a["agent_messages"] == 1 and a["proposals_shown"] == 1
            assert a["questions_chat"] == 1
        else:
            assert a["agent_messages"] == 0 and a["proposals_shown"] == 0
        assert a["operations"] >= 4  # two categories made, two uploads
    applied = {  # the script applies the proposal for agents participants of even index
        p.id
        for n, p in enumerate(study.design.participants)
        if p.condition == "agents" and n % 2 == 0 and p.id != WITHDRAWS
    }
    assert applied and {pid for pid, a in free.items() if a["proposals_applied"]} == applied
    assert Path(report["plots"][0]).stat().st_size > 10_000

    replay = run_duetml("study", "replay", str(folder), "P01")
    lines = replay.stdout.splitlines()
    assert "study_consent" in lines[0] and "study_answers" in lines[-1]
    assert any("worn-on-feet" in line and "add_images" in line for line in lines)

    out = tmp_path / "export"
    exported = run_duetml("study", "export", str(folder), "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert not (out / "participants" / WITHDRAWS).exists()
    with open(out / "data.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["participant"] for r in rows} == {p.id for p in study.design.participants} - {
        WITHDRAWS
    }
    assert {r["source"] for r in rows} == {"participant", "rater", "log"}
    first = out / "participants" / "P01" / "requirement"
    categories = json.loads((first / "categories.json").read_text())
    assert all((first / photo).is_file() for c in categories for photo in c["photos"])
    log = (first / "events.jsonl").read_text()
    assert ".jpg" not in log and str(tmp_path) not in log and '"ts"' not in log
    assert "seed" not in json.loads((out / "study.json").read_text())
