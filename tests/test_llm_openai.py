"""OpenAIProvider against a real loopback server speaking OpenAI's chat-completions SSE."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator

import pytest
from helpers import free_port
from llm_fakes import FakeOpenAIServer
from PIL import Image

from duetml.errors import LLMError
from duetml.llm.base import Timeouts
from duetml.llm.openai_provider import LOCAL_PLACEHOLDER_KEY, OpenAIProvider
from duetml.llm.types import ChatMessage, ImageInput

KEY = "sk-proj-SECRETSECRET-abcdefghij0123"
QUICK = Timeouts(connect=1.0, read=0.5)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as fake:
        yield fake


def make(server: FakeOpenAIServer, model: str = "gpt-4o", **kwargs: object) -> OpenAIProvider:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("retry_backoff", 0.01)
    return OpenAIProvider(model, base_url=server.url, env={}, **kwargs)


def png(color: tuple[int, int, int] = (30, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (5, 7), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (9, 3), (1, 2, 3)).save(buffer, "JPEG")
    return buffer.getvalue()


def hello() -> list[ChatMessage]:
    return [ChatMessage("user", "hello")]


def assert_one_sentence(message: str) -> None:
    assert message.endswith(".")
    assert "\n" not in message and "Traceback" not in message and "Error code:" not in message
    assert len(message) < 400


def failure(provider: OpenAIProvider) -> tuple[list[str], LLMError]:
    received: list[str] = []
    with pytest.raises(LLMError) as info:
        for piece in provider.stream_chat(hello()):
            received.append(piece)  # noqa: PERF402 - keep pieces from before the error
    error = info.value
    assert_one_sentence(str(error))
    assert KEY not in str(error)
    assert error.exit_code == 7 and error.__suppress_context__
    return received, error


# --- the happy path ------------------------------------------------------------------------


def test_streams_token_by_token(server: FakeOpenAIServer) -> None:
    server.queue_reply("Looks like a sneaker.")
    assert list(make(server).stream_chat(hello())) == ["Looks", " like", " a", " sneaker."]


def test_sends_key_model_and_images_as_data_urls(server: FakeOpenAIServer) -> None:
    server.queue_reply("Two shoes.")
    first, second = jpeg(), png()
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage(
            "user",
            "What are these?",
            images=[ImageInput.from_bytes(first, "a.jpg"), ImageInput.from_bytes(second)],
        ),
        ChatMessage("assistant", "Shoes?"),
        ChatMessage("user", "Count them."),
    ]
    assert make(server).chat(messages) == "Two shoes."

    request = server.chat_requests[-1]
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.json
    assert body["model"] == "gpt-4o" and body["stream"] is True
    system, user, assistant, follow_up = body["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert assistant == {"role": "assistant", "content": "Shoes?"}
    assert follow_up == {"role": "user", "content": "Count them."}
    text, image_a, image_b = user["content"]
    assert text["type"] == "text" and text["text"].startswith("What are these?")
    assert "Image 1: a.jpg" in text["text"]
    for part, original, mime, fmt in (
        (image_a, first, "image/jpeg", "JPEG"),
        (image_b, second, "image/png", "PNG"),
    ):
        assert part["type"] == "image_url"
        prefix, encoded = part["image_url"]["url"].split(",", 1)
        assert prefix == f"data:{mime};base64"
        assert base64.b64decode(encoded) == original
        assert Image.open(io.BytesIO(base64.b64decode(encoded))).format == fmt


def test_list_models_and_model_info(server: FakeOpenAIServer) -> None:
    provider = make(server)
    assert [(m.name, m.installed, m.vision) for m in provider.list_models()] == [
        ("gpt-4o", True, True),
        ("gpt-4o-mini", True, True),
    ]
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert provider.model_info().installed
    missing = make(server, "gpt-3.5-turbo").model_info()
    assert (missing.installed, missing.vision) == (False, False)


def test_local_server_needs_no_key_and_gets_a_placeholder() -> None:
    with FakeOpenAIServer(models=["qwen2.5vl:7b", "llava:latest", "mistral"]) as lm_studio:
        lm_studio.queue_reply("Hi.")
        provider = OpenAIProvider("qwen2.5vl:7b", base_url=lm_studio.url, env={})
        assert provider.chat(hello()) == "Hi."
        sent = lm_studio.chat_requests[-1]
        assert sent.headers["authorization"] == f"Bearer {LOCAL_PLACEHOLDER_KEY}"
        assert provider.describe()["key"] is None and provider.is_local()
        assert provider.model_info().vision is True

        def info(model: str) -> tuple[bool, bool | None]:
            found = OpenAIProvider(model, base_url=lm_studio.url, env={}).model_info()
            return found.installed, found.vision

        assert info("llava") == (True, True)  # Ollama's /v1 lists "llava:latest"
        assert info("qwen2.5vl") == (False, True)
        assert info("mistral") == (True, None)


def test_base_url_from_env(server: FakeOpenAIServer) -> None:
    server.queue_reply("from env")
    provider = OpenAIProvider(env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": KEY})
    assert provider.model == "gpt-4o" and provider.chat(hello()) == "from env"


def test_missing_key_for_a_remote_endpoint_fails_before_any_request() -> None:
    provider = OpenAIProvider("gpt-4o", env={})
    started = time.monotonic()
    _, error = failure(provider)
    assert time.monotonic() - started < 1
    assert str(error) == (
        "No API key is set for https://api.openai.com/v1: set OPENAI_API_KEY, or keep your "
        "photos on this machine with `duetml llm use passive ollama:qwen2.5vl`."
    )
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        provider.list_models()


# --- failures ------------------------------------------------------------------------------


def test_connection_refused_local_server() -> None:
    port = free_port()
    _, error = failure(OpenAIProvider("llava", base_url=f"http://127.0.0.1:{port}/v1", env={}))
    assert str(error).startswith(
        f"No server is answering at http://127.0.0.1:{port}/v1: start your OpenAI-compatible server"
    )


def test_wrong_key_is_rejected_without_echoing_it() -> None:
    with FakeOpenAIServer(api_key="sk-the-right-one-0000000000", echo_key_in_errors=True) as s:
        _, error = failure(make(s))
        assert str(error) == (
            f"The server at {s.url} rejected the API key (HTTP 401): check OPENAI_API_KEY."
        )
        assert len(s.chat_requests) == 1


def test_403(server: FakeOpenAIServer) -> None:
    server.queue_status(403)
    _, error = failure(make(server))
    assert "(HTTP 403)" in str(error) and "'gpt-4o'" in str(error)


def test_unknown_model_names_it(server: FakeOpenAIServer) -> None:
    _, error = failure(make(server, "gpt-4o-typo"))
    assert str(error).startswith(
        f"The server at {server.url} does not know the model 'gpt-4o-typo' (HTTP 404)"
    )
    assert len(server.chat_requests) == 1


def test_retry_after_ms_header_is_honoured(server: FakeOpenAIServer) -> None:
    server.queue_status(429, headers={"retry-after-ms": "50", "Retry-After": "3600"})
    server.queue_reply("quick")
    started = time.monotonic()
    assert make(server).chat(hello()) == "quick"
    assert time.monotonic() - started < 2


def test_no_quota_is_not_retried(server: FakeOpenAIServer) -> None:
    server.queue_status(
        429,
        retry_after=0,
        body={
            "error": {
                "message": "You exceeded your current quota.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        },
    )
    _, error = failure(make(server))
    assert len(server.chat_requests) == 1 and "no quota left" in str(error)


@pytest.mark.parametrize("after", [0, 1])
def test_malformed_sse(server: FakeOpenAIServer, after: int) -> None:
    server.queue_malformed(after_chunks=after)
    received, error = failure(make(server))
    assert len(received) == after and "could not read" in str(error)


def test_error_event_inside_the_stream(server: FakeOpenAIServer) -> None:
    server.queue_stream_error("The model crashed", after_chunks=1)
    received, error = failure(make(server))
    assert received == ["one"]
    assert str(error) == (
        f"The server at {server.url} reported an error while answering (The model crashed): "
        "try again."
    )


def test_model_list_failures(server: FakeOpenAIServer) -> None:
    server.queue_status(500, endpoint="models")
    assert len(make(server).list_models()) == 2  # retried once, then fine
    server.queue_malformed(endpoint="models")
    with pytest.raises(LLMError, match="could not read"):
        make(server).list_models()


@pytest.mark.slow
def test_key_never_reaches_messages_logs_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(api_key=KEY) as s:
        provider = make(s, timeout=QUICK)
        s.queue_reply("fine")
        s.queue_status(
            400,
            body={
                "error": {
                    "message": f"Key {KEY} may not send images",
                    "type": "invalid_request_error",
                }
            },
        )
        s.queue_status(500, times=3)
        s.queue_cut(after_chunks=1)
        s.queue_hang()
        texts = [provider.chat(hello())]
        for _ in range(4):
            with pytest.raises(LLMError) as info:
                provider.chat(hello())
            texts.append(str(info.value))
        texts += [repr(provider), str(provider), str(provider.describe())]
    assert "sk-…0123" in texts[1]  # the echoed key is masked, the rest of the reason kept
    with FakeOpenAIServer(api_key="sk-other-000000000000", echo_key_in_errors=True) as hostile:
        with pytest.raises(LLMError) as info:
            make(hostile).chat(hello())
        texts.append(str(info.value))
    assert caplog.records
    for text in [*texts, caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert KEY not in text
