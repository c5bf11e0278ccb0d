"""Unknown models that refuse images (issue 17): a text-only server breaks the stream when it
is sent photos; duetml asks again once without them, remembers it for that server and model,
and tells the user once. The loopback server replays what llama.cpp's server really answered
(tests/fixtures/llama_cpp, recorded by bench/bench_real_server.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from llm_fakes import FakeOpenAIServer, RecordedRequest, recorded_answer
from typer.testing import CliRunner

from duetml.agents import AgentSession, text_only
from duetml.cli import app
from duetml.errors import LLMError
from duetml.llm import ChatMessage
from duetml.llm.base import ContextOverflowError, RequestFailed
from duetml.llm.openai_provider import OpenAIProvider
from duetml.project import Project

runner = CliRunner()
pytestmark = pytest.mark.project(categories=["hat", "shoes"])


def _with_images(request: RecordedRequest) -> bool:
    return b'"image_url"' in request.body


def test_a_text_only_server_gets_the_description_after_one_broken_try(
    project: Project, duetml_home: Path
) -> None:
    with FakeOpenAIServer(models=["smollm2"], text_only=True) as server:
        root = str(project.root)
        used = runner.invoke(
            app, ["llm", "use", "both", "openai:smollm2", "--base-url", server.url, "-p", root]
        )
        assert used.exit_code == 0, used.output
        server.queue_reply("Your hats and shoes look balanced.")
        asked = runner.invoke(app, ["ask", "how is my data?", "-p", root])
        assert asked.exit_code == 0, asked.output
        assert asked.stdout.startswith("Your hats and shoes look balanced.")
        assert "does not take photos" in asked.output
        assert "The connection to The server" not in asked.output
        chats = server.chat_requests
        # One try with photos (streamed, then asked unstreamed why it broke), then without.
        assert [(_with_images(r), r.json["stream"]) for r in chats] == [
            (True, True),
            (True, False),
            (False, True),
        ]
        assert "hat" in chats[-1].body.decode()  # the description went instead
        remembered = json.loads((duetml_home / text_only.TEXT_ONLY_FILE).read_text())
        assert [m["model"] for m in remembered["models"]] == ["smollm2"]

        # Remembered: the next request (another command, another session) sends no photo
        # from the start, and the user is not told again.
        server.queue_reply("Add more shoes.")
        advised = runner.invoke(app, ["advise", "-p", root])
        assert advised.exit_code == 0, advised.output
        assert not _with_images(server.chat_requests[-1])
        assert len(server.chat_requests) == 4
        assert "does not take photos" not in advised.output


def test_a_broken_stream_without_photos_is_still_an_error(project: Project) -> None:
    """Only a request that carried photos is asked again; a text request that breaks gets the
    sentence, with "the server" in lower case inside it."""
    with FakeOpenAIServer(models=["smollm2"]) as server:
        server.queue_recorded("images_stream")  # llama.cpp's empty 200 stream
        provider = OpenAIProvider("smollm2", base_url=server.url, retry_backoff=0)
        with pytest.raises(RequestFailed) as caught:
            provider.chat([ChatMessage("user", "hello")])
        assert caught.value.before_answer and caught.value.broken
        for _ in range(3):
            server.queue_cut("x", after_chunks=0)
        with pytest.raises(RequestFailed) as caught:
            provider.chat([ChatMessage("user", "hello")])
        message = str(caught.value)
        assert message.startswith("The connection to the server at http://127.0.0.1:"), message


@pytest.mark.parametrize(
    ("status", "detail", "refuses"),
    [
        (500, recorded_answer("images_nostream")["body"], True),  # llama.cpp, not streamed
        (400, '{"error": {"message": "Image input is not supported for this model"}}', True),
        (400, recorded_answer("overflow_nostream")["body"], False),  # a context overflow
        (401, '{"error": {"message": "Incorrect API key"}}', False),
    ],
)
def test_which_errors_mean_no_photos_here(status: int, detail: str, refuses: bool) -> None:
    with FakeOpenAIServer(models=["smollm2"]) as server:
        server.queue_status(status, body=json.loads(detail))
        provider = OpenAIProvider("smollm2", base_url=server.url, max_retries=0)
        with pytest.raises(LLMError) as caught:
            provider.chat([ChatMessage("user", "hello")])
    failed = caught.value
    assert (isinstance(failed, RequestFailed) and text_only.refuses_images(failed)) is refuses


def _recorded_context_length() -> int:
    """The context length llama.cpp's recorded overflow answer names."""
    said = re.search(
        r"maximum context length is (\d+)", recorded_answer("overflow_nostream")["body"]
    )
    assert said is not None
    return int(said.group(1))


def test_the_real_servers_context_overflow_is_understood(project: Project) -> None:
    """llama.cpp's own words for a request longer than its context (recorded) make duetml
    shrink the request, as OpenAI's do."""
    with FakeOpenAIServer(models=["smollm2"]) as server:
        server.queue_status(400, body=json.loads(recorded_answer("overflow_nostream")["body"]))
        provider = OpenAIProvider("smollm2", base_url=server.url, max_retries=0)
        with pytest.raises(ContextOverflowError) as caught:
            provider.chat([ChatMessage("user", "hello")])
        assert caught.value.limit == _recorded_context_length()


def test_the_session_notice_is_given_once(project: Project) -> None:
    with FakeOpenAIServer(models=["smollm2"], text_only=True) as server:
        session = AgentSession(
            project, passive=OpenAIProvider("smollm2", base_url=server.url, retry_backoff=0)
        )
        server.queue_reply("first")
        assert "".join(session.ask_stream("hello")).startswith("first")
        notices = session.pop_notices()
        assert sum("does not take photos" in n for n in notices) == 1
        server.queue_reply("second")
        assert "".join(session.ask_stream("again")).startswith("second")
        assert not any("does not take photos" in n for n in session.pop_notices())


def test_an_empty_stream_is_asked_again_unstreamed_to_learn_why(project: Project) -> None:
    """llama.cpp's server answers a request longer than its context with an empty 200 stream
    (recorded), which said "try again" (it never helps). Not streamed, the same request gets
    its real 400, so duetml knows the context and shrinks the request."""
    with FakeOpenAIServer(models=["smollm2"]) as server:
        server.queue_recorded("overflow_stream")
        server.queue_recorded("overflow_nostream")
        provider = OpenAIProvider("smollm2", base_url=server.url, max_retries=0)
        with pytest.raises(ContextOverflowError) as caught:
            provider.chat([ChatMessage("user", "a long question")])
        assert caught.value.limit == _recorded_context_length()
        streamed = [r.json["stream"] for r in server.chat_requests]
        assert streamed == [True, False]
        assert server.chat_requests[-1].json["max_tokens"] == 1


def test_photos_refused_then_too_long_is_told_as_too_long(project: Project) -> None:
    """What bench_real_server found at n_ctx 2048: the request without photos was still too
    long, and the first fix used up the only retry, so the user read "try again". Each fix is
    now tried once, in turn: without photos, then smaller (here too small for the
    instructions, which the sentence says, as SmolLM2 at 2048 tokens really is)."""
    with FakeOpenAIServer(models=["smollm2"], text_only=True) as server:
        root = str(project.root)
        used = runner.invoke(
            app, ["llm", "use", "both", "openai:smollm2", "--base-url", server.url, "-p", root]
        )
        assert used.exit_code == 0, used.output
        server.queue_recorded("overflow_stream")  # the request with the description
        server.queue_recorded("overflow_nostream")  # asked unstreamed why
        asked = runner.invoke(app, ["ask", "how is my data?", "-p", root])
        assert asked.exit_code == 7
        assert "context of only" in asked.stderr and "try again" not in asked.stderr
        chats = server.chat_requests
        assert [(_with_images(r), r.json["stream"]) for r in chats] == [
            (True, True),
            (True, False),
            (False, True),
            (False, False),
        ]
