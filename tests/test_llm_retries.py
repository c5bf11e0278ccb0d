"""Retries, timeouts and cut streams, the same for every provider: each test runs against a
real loopback server speaking Ollama's wire format and one speaking OpenAI's, through the real
`ollama` and `openai` clients. Provider-specific cases stay in test_llm_ollama/openai.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from llm_fakes import FakeOllamaServer, FakeOpenAIServer

from duetml.errors import LLMError
from duetml.llm import Provider
from duetml.llm.base import Timeouts
from duetml.llm.ollama_provider import OllamaProvider
from duetml.llm.openai_provider import OpenAIProvider
from duetml.llm.types import ChatMessage

KEY = "sk-proj-SECRETSECRET-abcdefghij0123"
QUICK = Timeouts(connect=1.0, read=0.5)


@dataclass
class Wire:
    """One provider against its loopback server, and how its sentences name things."""

    server: Any
    provider: Callable[..., Provider]
    server_name: str  # how a sentence names the server: "Ollama at URL" or "The server at URL"
    rate_limited: str  # what a 429 sentence says
    retried_status: int  # a 5xx the provider's server really sends when overloaded
    overloaded: str  # what the sentence for that 5xx says


@pytest.fixture(params=["ollama", "openai"])
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    if request.param == "ollama":
        with FakeOllamaServer() as ollama:

            def make_ollama(**kwargs: Any) -> Provider:
                kwargs.setdefault("retry_backoff", 0.01)
                return OllamaProvider("llava", base_url=ollama.url, env={}, **kwargs)

            yield Wire(
                ollama,
                make_ollama,
                f"Ollama at {ollama.url}",
                "HTTP 429",
                500,
                "HTTP 500: llama runner process has terminated",
            )
    else:
        with FakeOpenAIServer(api_key=KEY) as openai:

            def make_openai(**kwargs: Any) -> Provider:
                kwargs.setdefault("api_key", KEY)
                kwargs.setdefault("retry_backoff", 0.01)
                return OpenAIProvider("gpt-4o", base_url=openai.url, env={}, **kwargs)

            yield Wire(
                openai,
                make_openai,
                f"The server at {openai.url}",
                "is rate-limiting requests (HTTP 429",
                503,
                "could not answer (HTTP 503: The engine is currently overloaded",
            )


def hello() -> list[ChatMessage]:
    return [ChatMessage("user", "hello")]


def failure(provider: Provider) -> tuple[list[str], LLMError]:
    """The pieces that arrived before the error, and the error: one sentence, no key."""
    received: list[str] = []
    with pytest.raises(LLMError) as info:
        for piece in provider.stream_chat(hello()):
            received.append(piece)  # noqa: PERF402 - keep pieces from before the error
    error = info.value
    message = str(error)
    assert message.endswith(".") and "\n" not in message and len(message) < 400
    assert "Traceback" not in message and 'File "' not in message and KEY not in message
    assert error.exit_code == 7 and error.__suppress_context__
    return received, error


def test_429_is_retried_honouring_retry_after_then_explained(wire: Wire) -> None:
    wire.server.queue_status(429, retry_after=0, times=3)
    _, error = failure(wire.provider(max_retries=2))
    assert len(wire.server.chat_requests) == 3
    assert wire.rate_limited in str(error)


@pytest.mark.slow
def test_retry_after_is_waited_then_the_answer_arrives(wire: Wire) -> None:
    wire.server.queue_status(wire.retried_status, retry_after=1)
    wire.server.queue_reply("back again")
    started = time.monotonic()
    assert wire.provider(retry_backoff=0.0).chat(hello()) == "back again"
    assert time.monotonic() - started >= 0.95
    assert len(wire.server.chat_requests) == 2


def test_retry_after_beyond_the_cap_is_not_waited(wire: Wire) -> None:
    wire.server.queue_status(429, retry_after=3600)
    started = time.monotonic()
    _, error = failure(wire.provider())
    assert time.monotonic() - started < 2
    assert len(wire.server.chat_requests) == 1 and "asking to wait 3600 seconds" in str(error)


def test_max_retries_zero_means_one_attempt(wire: Wire) -> None:
    wire.server.queue_status(500, times=2)
    failure(wire.provider(max_retries=0))
    assert len(wire.server.chat_requests) == 1


def test_5xx_is_retried_then_explained_with_the_servers_reason(wire: Wire) -> None:
    wire.server.queue_status(wire.retried_status, times=3)
    _, error = failure(wire.provider(max_retries=2))
    assert len(wire.server.chat_requests) == 3
    assert wire.overloaded in str(error)


@pytest.mark.parametrize("status", [500, 502])
def test_5xx_then_success_returns_the_answer_once(wire: Wire, status: int) -> None:
    wire.server.queue_status(status)
    wire.server.queue_reply("fine now")
    assert wire.provider().chat(hello()) == "fine now"


@pytest.mark.slow
def test_hang_before_answer_times_out_fast_and_is_not_retried(wire: Wire) -> None:
    wire.server.queue_hang()
    started = time.monotonic()
    _, error = failure(wire.provider(timeout=QUICK))
    assert time.monotonic() - started < 3
    assert str(error) == (
        f"{wire.server_name} did not answer within 0.5 seconds: try again, or choose a "
        "smaller model."
    )
    assert len(wire.server.chat_requests) == 1  # a timeout is not multiplied by retries


@pytest.mark.slow
def test_hang_mid_stream_keeps_what_arrived(wire: Wire) -> None:
    wire.server.queue_hang(after_chunks=2)
    started = time.monotonic()
    received, error = failure(wire.provider(timeout=QUICK))
    assert time.monotonic() - started < 3
    assert received == ["one", " two"]
    assert "stopped answering for more than 0.5 seconds" in str(error)


def test_stream_cut_mid_answer_keeps_chunks_and_is_not_retried(wire: Wire) -> None:
    wire.server.queue_cut("one two three four", after_chunks=2)
    received, error = failure(wire.provider())
    assert received == ["one", " two"]
    assert "dropped in the middle of the answer" in str(error)
    assert len(wire.server.chat_requests) == 1  # retrying would repeat "one two"


def test_stream_cut_before_any_text_is_retried(wire: Wire) -> None:
    wire.server.queue_cut(after_chunks=0)
    wire.server.queue_reply("second try")
    assert wire.provider().chat(hello()) == "second try"
    assert len(wire.server.chat_requests) == 2


def test_clean_end_without_its_last_message_is_incomplete(wire: Wire) -> None:
    wire.server.queue_truncated(after_chunks=2)
    received, error = failure(wire.provider())
    assert received == ["one", " two"]
    assert "stopped before the answer was complete" in str(error)
