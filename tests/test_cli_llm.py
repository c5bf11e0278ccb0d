"""`duetml chat/ask/advise/llm` against loopback servers speaking the real Ollama and OpenAI
protocols, through the real `ollama` and `openai` clients over HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port, invoke_duetml
from llm_fakes import FakeOllamaServer, FakeOpenAIServer
from PIL import Image

from duetml.agents import AgentSession, choice
from duetml.project import Project

pytestmark = pytest.mark.project(per_category=4, categories=["hat", "shoes"])


def settings(project: Project) -> dict[str, Any]:
    return tomllib.loads((project.root / "duetml.toml").read_text())


def test_ask_streams_the_reply_and_sends_sheets(ollama: FakeOllamaServer, project: Project) -> None:
    ollama.queue_reply("Hats and shoes look clearly different.")
    result = invoke_duetml("ask", "What should I check?", "-p", str(project.root))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hats and shoes look clearly different.\n"
    body = ollama.chat_requests[-1].json
    assert body["model"] == "qwen2.5vl" and body["stream"] is True
    last = body["messages"][-1]
    assert last["role"] == "user" and len(last["images"]) == 2
    for encoded in last["images"]:
        Image.open(io.BytesIO(base64.b64decode(encoded))).verify()
    assert "<untrusted-data" in last["content"]
    assert "1. hat: 4" in last["content"] and "2. shoes: 4" in last["content"]
    assert settings(project)["goal"] == "What should I check?"


def test_ask_json_and_about_data(ollama: FakeOllamaServer, project: Project) -> None:
    ollama.queue_reply("Add more varied shoes.")
    result = invoke_duetml("ask", "--about", "data", "--json", "-p", str(project.root))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reply"] == "Add more varied shoes." and data["about"] == "data"
    assert data["agent"]["provider"] == "ollama" and data["agent"]["is_local"] is True
    assert "training data" in ollama.chat_requests[-1].json["messages"][-1]["content"]


def test_ask_needs_a_question_for_chat(ollama: FakeOllamaServer, project: Project) -> None:
    result = invoke_duetml("ask", "-p", str(project.root))
    assert result.exit_code == 1 and "--about data" in result.stderr
    assert ollama.chat_requests == []


@pytest.mark.slow
def test_advise_exit_codes(ollama: FakeOllamaServer, project: Project) -> None:
    ollama.queue_reply("Your hats are all caps; will the app meet other hats?")
    first = invoke_duetml("advise", "-p", str(project.root))
    assert first.exit_code == 0 and first.stdout.startswith("Your hats are all caps")
    again = invoke_duetml("advise", "-p", str(project.root))  # nothing changed since the last look
    assert again.exit_code == 10 and again.stdout == "" and len(ollama.chat_requests) == 1
    project.rename_category("shoes", "footwear")
    ollama.queue_reply("NOTHING_TO_ADD")
    quiet = invoke_duetml("advise", "--json", "-p", str(project.root))
    assert quiet.exit_code == 10 and json.loads(quiet.stdout) == {"advice": None}
    assert len(ollama.chat_requests) == 2


@pytest.mark.slow
def test_chat_conversation_with_data_ask_and_exit(
    ollama: FakeOllamaServer, project: Project
) -> None:
    ollama.queue_reply("Which hats will it see?")
    ollama.queue_reply("Your shoes photos are all sandals.")
    result = invoke_duetml(
        "chat",
        "--interval",
        "600",
        "-p",
        str(project.root),
        input="An app that sorts my wardrobe\n/data\nexit\n",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "assistant> What kind of AI do you want to make?" in out
    assert "you> An app that sorts my wardrobe" in out
    assert "assistant> Which hats will it see?" in out
    assert "assistant> Your shoes photos are all sandals." in out
    conversation = (project.root / ".duetml" / "conversation.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in conversation] == [
        "greeting",
        "chat",
        "chat",
        "ask_data",
        "ask_data",
    ]
    # Reopening continues where the user left off.
    ollama.queue_reply("Welcome back.")
    again = invoke_duetml(
        "chat", "--interval", "600", "-p", str(project.root), input="hi again\n"
    )  # Ctrl-D
    assert again.exit_code == 0
    assert "(continuing: 5 earlier messages" in again.stdout and "Welcome back." in again.stdout


@pytest.mark.slow
def test_chat_shows_proactive_advice_between_turns(
    ollama: FakeOllamaServer, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOllamaServer() as second:
        second.queue_reply("You have no category for trousers.")
        result = invoke_duetml(
            "llm",
            "use",
            "proactive",
            "ollama:llava",
            "--base-url",
            second.url,
            "-p",
            str(project.root),
        )
        assert result.exit_code == 0, result.output
        ollama.queue_reply("Nice.")
        # The first look happens once the first turn is over, before the next prompt.
        import duetml.cli.chat_cmd as cmds

        original = cmds._reply

        def reply_then_wait(session: AgentSession, question: str, about: str) -> None:
            original(session, question, about)
            import time

            deadline = time.monotonic() + 5
            while not second.chat_requests and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)

        monkeypatch.setattr(cmds, "_reply", reply_then_wait)
        result = invoke_duetml(
            "chat", "--interval", "0.05", "-p", str(project.root), input="Sort clothes\nexit\n"
        )
    assert result.exit_code == 0, result.output
    assert "advice> You have no category for trousers." in result.stdout
    assert second.chat_requests[-1].json["model"] == "llava"


@pytest.mark.slow
def test_dead_server_gives_one_line_and_exit_7(tmp_path: Path, project: Project) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "OLLAMA_HOST": dead}
    for command in (["ask", "hello"], ["advise"]):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from duetml.cli import main; main()",
                *command,
                "-p",
                str(project.root),
            ],
            capture_output=True,
            check=False,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 7, done.stderr
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: Ollama is not running at {dead}")


def test_answer_cut_mid_stream(ollama: FakeOllamaServer, project: Project) -> None:
    ollama.queue_cut("one two three four", after_chunks=2)
    result = invoke_duetml("ask", "hi", "-p", str(project.root))
    assert result.exit_code == 7
    assert result.stdout == "one two\n"
    assert result.stderr.count("\n") == 1 and "in the middle of the answer" in result.stderr
    saved = [
        json.loads(line)
        for line in (project.root / ".duetml" / "conversation.jsonl").read_text().splitlines()
    ]
    assert [(m["kind"], m["content"][:9]) for m in saved[1:]] == [
        ("chat", "hi"),
        ("chat", "one two …"),
        ("error", "The conne"),
    ]


def test_chat_survives_a_dead_server(monkeypatch: pytest.MonkeyPatch, project: Project) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    result = invoke_duetml(
        "chat", "--interval", "600", "-p", str(project.root), input="hello\nexit\n"
    )
    assert result.exit_code == 0
    assert result.stderr.count("Error: Ollama is not running") == 1
    kinds = [
        json.loads(line)["kind"]
        for line in (project.root / ".duetml" / "conversation.jsonl").read_text().splitlines()
    ]
    assert kinds == ["greeting", "chat", "error"]


@pytest.mark.slow
def test_llm_status_text_and_json(ollama: FakeOllamaServer, project: Project) -> None:
    result = invoke_duetml("llm", "status", "-p", str(project.root))
    assert result.exit_code == 0, result.output
    assert "passive agent: ollama:qwen2.5vl (from default settings)" in result.stdout
    assert "data stays on this machine" in result.stdout
    assert "model installed: yes; sees images: yes" in result.stdout
    assert "reachable; 3 model(s)" in result.stdout
    data = json.loads(invoke_duetml("llm", "status", "--json", "-p", str(project.root)).stdout)
    passive = data["agents"]["passive"]
    assert passive["vision"] is True and passive["data_goes_to"] == "this machine"
    assert data["servers"][0]["reachable"] is True
    assert {m["name"] for m in data["servers"][0]["models"]} >= {"qwen2.5vl:latest", "llava:latest"}


def test_llm_status_with_a_dead_server_still_answers(
    monkeypatch: pytest.MonkeyPatch, project: Project
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    result = invoke_duetml("llm", "status", "-p", str(project.root))
    assert result.exit_code == 0
    assert "not reachable (Ollama is not running" in result.stdout


@pytest.mark.slow
def test_llm_use_openai_compatible_server_sends_data_urls(
    ollama: FakeOllamaServer, project: Project
) -> None:
    with FakeOpenAIServer(models=["local-vl"]) as server:
        result = invoke_duetml(
            "llm",
            "use",
            "passive",
            "openai:local-vl",
            "--base-url",
            server.url,
            "-p",
            str(project.root),
        )
        assert result.exit_code == 0 and "passive agent now uses openai:local-vl" in result.stdout
        assert settings(project)["agents"]["passive"] == {
            "provider": "openai",
            "model": "local-vl",
            "base_url": server.url,
        }
        server.queue_reply("Looks good.")
        asked = invoke_duetml("ask", "hello", "-p", str(project.root))
        assert asked.exit_code == 0 and asked.stdout == "Looks good.\n"
        parts = server.chat_requests[-1].json["messages"][-1]["content"]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        assert len(urls) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in urls)


def test_cloud_needs_consent_before_anything_is_sent(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = invoke_duetml("llm", "use", "passive", "openai:gpt-4o", "-p", str(project.root))
    assert "not on this machine" in result.stdout
    refused = invoke_duetml("ask", "hello", "-p", str(project.root))
    assert refused.exit_code == 7
    assert "--allow-cloud" in refused.stderr and "https://api.openai.com/v1" in refused.stderr
    chat = invoke_duetml("chat", "-p", str(project.root), input="no\n")
    assert chat.exit_code == 1 and "Nothing was sent" in chat.stderr
    # Consent is remembered; the next problem (no key) is reported without any network call.
    allowed = invoke_duetml("ask", "hello", "--allow-cloud", "-p", str(project.root))
    assert allowed.exit_code == 7 and "OPENAI_API_KEY" in allowed.stderr
    assert choice.approved_endpoints(project.root) == {"https://api.openai.com/v1"}
    assert "cloud_consent" not in settings(project)["agents"]
    status = invoke_duetml("llm", "status", "-p", str(project.root))
    assert "photos and text are SENT to this server; confirmed" in status.stdout


@pytest.mark.slow
def test_llm_use_rejects_bad_input(project: Project) -> None:
    assert (
        invoke_duetml("llm", "use", "passive", "skynet:x", "-p", str(project.root)).exit_code == 1
    )
    bad_url = invoke_duetml(
        "llm", "use", "passive", "ollama:llava", "--base-url", "ftp://x", "-p", str(project.root)
    )
    assert bad_url.exit_code == 1 and "not an http(s) URL" in bad_url.stderr
    assert "passive" not in settings(project)["agents"]
    assert (
        invoke_duetml("llm", "use", "robot", "ollama:llava", "-p", str(project.root)).exit_code == 1
    )


def test_llm_proactive_on_off(project: Project) -> None:
    off = invoke_duetml("llm", "proactive", "off", "-p", str(project.root))
    assert off.exit_code == 0 and settings(project)["agents"]["proactive_enabled"] is False
    on = invoke_duetml("llm", "proactive", "on", "--interval", "30", "-p", str(project.root))
    assert on.exit_code == 0 and "every 30 s" in on.stdout
    assert settings(project)["agents"]["proactive_enabled"] is True
    assert settings(project)["agents"]["proactive_interval_seconds"] == 30


def test_not_a_project(tmp_path: Path) -> None:
    result = invoke_duetml("ask", "hi", "-p", str(tmp_path))
    assert result.exit_code == 9 and "not a duetml project" in result.stderr


@pytest.mark.slow
def test_cli_import_stays_light() -> None:
    code = (
        "import sys, duetml.cli.agent_cmds, duetml.cli.chat_cmd, duetml.cli.llm_cmds, "
        "duetml.agents;"
        "heavy = [m for m in ('ollama', 'openai', 'numpy', 'PIL', 'torch', 'httpx') "
        "if m in sys.modules];"
        "print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "[]", done.stderr
