"""Proposals through the real openai and ollama clients against loopback servers: tool calls
where the model has tools, a fenced JSON block where it has not; validated against the
project, applied only on request, as one undoable operation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_fakes import FakeProvider
from llm_fakes import FakeOllamaServer, FakeOpenAIServer

from duetml.agents import AgentSession
from duetml.agents.proposals import raw_proposals, validate
from duetml.errors import DuetmlError
from duetml.llm.ollama_provider import OllamaProvider
from duetml.llm.openai_provider import OpenAIProvider
from duetml.project import Project


def hats(project: Project, count: int = 2) -> list[str]:
    return [r.rel for r in project.images("train", "hat")[:count]]


def ollama_session(
    project: Project, server: FakeOllamaServer | FakeOpenAIServer, model: str = "qwen2.5vl"
) -> AgentSession:
    passive = OllamaProvider(model, base_url=server.url, agent="passive")
    return AgentSession(project, passive=passive, proactive=FakeProvider())


def openai_session(project: Project, server: FakeOpenAIServer) -> AgentSession:
    passive = OpenAIProvider("gpt-4o", base_url=server.url, agent="passive")
    return AgentSession(project, passive=passive, proactive=FakeProvider())


def move_args(rels: list[str]) -> dict[str, Any]:
    return {"action": "move", "photos": rels, "to": "shoes", "reason": "they show shoes"}


def check_applied_and_undone(session: AgentSession, project: Project, rels: list[str]) -> None:
    proposal = session.proposals()[-1]
    assert proposal["label"] == f"Move {len(rels)} photos from hat to shoes"
    assert proposal["applied"] is False
    before = {r.rel for r in project.images("train", "hat")}
    result = session.apply_proposal(proposal["number"])
    assert "Moved 2 photos" in result
    assert not {r.rel for r in project.images("train", "hat")} & set(rels)
    logged = [e for e in project.log.recent() if e["event"] == "apply_suggestion"][-1]
    assert logged["origin"] == "proposal" and logged["action"] == "move"
    assert session.proposals()[-1]["applied"] is True
    with pytest.raises(DuetmlError, match="applied already"):
        session.apply_proposal(proposal["id"])
    project.undo()  # one operation: one undo brings every photo back
    assert {r.rel for r in project.images("train", "hat")} == before


@pytest.mark.slow
def test_ollama_tool_call_becomes_a_proposal(demo_project: Project) -> None:
    models = {"qwen2.5vl:latest": ["completion", "vision", "tools"]}
    with FakeOllamaServer(models) as server:
        rels = hats(demo_project)
        server.queue_tool_calls([("propose_change", move_args(rels))], text="Two hats are shoes.")
        session = ollama_session(demo_project, server)
        reply = "".join(session.ask_stream("Anything wrong with my hats?"))
        body = server.chat_requests[-1].json
    assert reply == "Two hats are shoes."
    assert [t["function"]["name"] for t in body["tools"]] == ["propose_change"]
    assert "call the propose_change tool" in body["messages"][-1]["content"]
    last = session.conversation()[-1]
    assert last["content"] == "Two hats are shoes." and len(last["proposals"]) == 1
    check_applied_and_undone(session, demo_project, rels)


def test_openai_tool_call_becomes_a_proposal(demo_project: Project) -> None:
    with FakeOpenAIServer() as server:
        rels = hats(demo_project)
        server.queue_tool_calls([("propose_change", move_args(rels))])
        session = openai_session(demo_project, server)
        reply = "".join(session.ask_stream("Anything wrong with my hats?"))
        body = server.chat_requests[-1].json
    assert reply == ""  # the model only called the tool
    assert body["tools"][0]["function"]["parameters"]["properties"]["action"]["enum"]
    last = session.conversation()[-1]
    assert last["proposals"][0]["reason"] == "they show shoes"
    assert last["content"]  # a line to go with the button, never an empty bubble
    check_applied_and_undone(session, demo_project, rels)


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["ollama", "openai"])
def test_a_fenced_json_block_becomes_a_proposal_without_tools(
    demo_project: Project, provider: str
) -> None:
    rels = hats(demo_project)
    block = json.dumps({"proposals": [move_args(rels)]})
    text = f"Two of your hats look like shoes.\n\n```json\n{block}\n```"
    server = FakeOllamaServer() if provider == "ollama" else FakeOpenAIServer(models=["local"])
    with server:
        server.queue_reply(text)
        if provider == "ollama":  # llava has no "tools" capability
            session = ollama_session(demo_project, server, model="llava")
        else:
            passive = OpenAIProvider("local", base_url=server.url, agent="passive")
            passive.supports_tools = lambda: False  # type: ignore[method-assign]  # a server without tool calling
            session = AgentSession(demo_project, passive=passive, proactive=FakeProvider())
        "".join(session.ask_stream("Anything wrong?"))
        body = server.chat_requests[-1].json
    assert not body.get("tools")  # the ollama client sends an empty list
    last_user = body["messages"][-1]["content"]
    text_of = last_user if isinstance(last_user, str) else last_user[0]["text"]
    assert "fenced block" in text_of
    last = session.conversation()[-1]
    assert last["content"] == "Two of your hats look like shoes."  # the block is taken out
    check_applied_and_undone(session, demo_project, rels)


@pytest.mark.slow
def test_photo_numbers_from_the_facts_resolve(trained_project: Project) -> None:
    session = AgentSession(trained_project, passive=FakeProvider(), proactive=FakeProvider())
    photos = session.builder.build("results").photos
    assert photos, "a trained demo project has numbered photos (mistakes, findings)"
    first = photos[1]
    target = next(c for c in trained_project.category_names() if c != first.split("/")[1])
    proposal = validate(trained_project, {"action": "move", "photos": ["#1"], "to": target}, photos)
    assert proposal.suggestion.photos == (first,)
    assert proposal.label.startswith("Move 1 photo from ")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"action": "move", "photos": ["#9"], "to": "shoes"}, "#9"),
        ({"action": "move", "photos": ["train/hat/nope.jpg"], "to": "shoes"}, "not in the project"),
        ({"action": "rename", "categories": ["hat"], "to": "shoes"}, "exists already"),
        ({"action": "merge", "categories": ["socks"], "to": "shoes"}, "does not exist"),
        ({"action": "add_category", "to": "../evil"}, "category name"),
        ({"action": "explode"}, "must be one of"),
        ({"action": "remove"}, "name the photos"),
    ],
)
def test_invalid_proposals_are_refused_with_one_sentence(
    demo_project: Project, raw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DuetmlError, match=problem):
        validate(demo_project, raw, {1: hats(demo_project, 1)[0]})


def test_refused_proposals_give_no_button_and_apply_nothing(demo_project: Project) -> None:
    block = json.dumps({"action": "merge", "categories": ["socks"], "to": "shoes"})
    passive = FakeProvider().enqueue(f"Merge them.\n```json\n{block}\n```")
    session = AgentSession(demo_project, passive=passive, proactive=FakeProvider())
    before = sorted(r.rel for r in demo_project.images("train"))
    "".join(session.ask_stream("merge?"))
    assert session.proposals() == []
    assert sorted(r.rel for r in demo_project.images("train")) == before
    refused = [e for e in demo_project.log.recent() if e["event"] == "agent_proposal_refused"]
    assert refused and "socks" in refused[-1]["problems"][0]


@pytest.mark.slow
def test_rename_merge_add_proposals_apply_as_one_operation_each(demo_project: Project) -> None:
    rels = hats(demo_project)
    raws: list[dict[str, Any]] = [
        {"action": "rename", "categories": ["t-shirt"], "to": "tops"},
        {"action": "merge", "categories": ["pants", "shoes"], "to": "bottoms"},
        {"action": "add_category", "to": "socks"},
        {"action": "remove", "photos": rels},
    ]
    labels = [validate(demo_project, raw, {}).label for raw in raws]
    assert labels == [
        "Rename t-shirt to tops",
        "Merge pants, shoes into bottoms",
        "Add category socks",
        "Remove 2 photos from hat",
    ]
    text, found = raw_proposals("```json\n" + json.dumps(raws) + "\n```")
    assert text == "" and len(found) == 4
    passive = FakeProvider().enqueue("```json\n" + json.dumps(raws) + "\n```")
    session = AgentSession(demo_project, passive=passive, proactive=FakeProvider())
    "".join(session.ask_stream("tidy up"))
    for number in (1, 2, 3, 4):
        session.apply_proposal(number)
    assert set(demo_project.category_names()) == {"tops", "bottoms", "socks", "hat"}
    for _ in range(4):
        demo_project.undo()
    assert set(demo_project.category_names()) == {"t-shirt", "pants", "shoes", "hat"}
    assert len(demo_project.images("train", "hat")) == 6


def test_a_fenced_block_that_is_no_proposal_stays_in_the_text() -> None:
    text = 'Here is how:\n```json\n{"name": "value"}\n```'
    assert raw_proposals(text) == (text, [])


@pytest.mark.slow
def test_duetml_chat_numbers_proposals_and_applies_one(
    demo_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from duetml.cli import app

    rels = hats(demo_project)
    models = {"qwen2.5vl:latest": ["completion", "vision", "tools"]}
    with FakeOllamaServer(models) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        server.queue_tool_calls([("propose_change", move_args(rels))], text="Two are shoes.")
        typed = "Anything misfiled?\n/apply 1\n/apply 1\n/undo\nexit\n"
        args = ["chat", "--interval", "600", "-p", str(demo_project.root)]
        result = CliRunner().invoke(app, args, input=typed)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "assistant> Two are shoes.\n  [1] Move 2 photos from hat to shoes   /apply 1" in out
    assert "Moved 2 photos to 'shoes'. (/undo reverts it)" in out
    assert "applied already" in result.output  # the second /apply 1 is refused
    assert "Undone: move 2 image(s) to 'shoes'." in out
    assert set(rels) <= {r.rel for r in demo_project.images("train", "hat")}
