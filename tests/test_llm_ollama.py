"""OllamaProvider against a real loopback server speaking Ollama's wire format."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator

import pytest
from helpers import free_port
from llm_fakes import FakeOllamaServer
from PIL import Image

from duetml.errors import LLMError
from duetml.llm.base import Timeouts
from duetml.llm.ollama_provider import OllamaProvider
from duetml.llm.types import ChatMessage, ImageInput

KEY = "ollama-proxy-key-SECRET-0123456789"
QUICK = Timeouts(connect=1.0, read=0.5)


@pytest.fixture
def server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer() as fake:
        yield fake


def make(server: FakeOllamaServer, model: str = "llava", **kwargs: object) -> OllamaProvider:
    kwargs.setdefault("retry_backoff", 0.01)
    return OllamaProvider(model, base_url=server.url, env={}, **kwargs)


def jpeg(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, "JPEG")
    return buffer.getvalue()


def hello() -> list[ChatMessage]:
    return [ChatMessage("user", "hello")]


def assert_one_sentence(message: str) -> None:
    assert message.endswith(".")
    assert "\n" not in message and "Traceback" not in message and 'File "' not in message
    assert len(message) < 400


def failure(
    provider: OllamaProvider, messages: list[ChatMessage] | None = None
) -> tuple[list[str], LLMError]:
    received: list[str] = []
    with pytest.raises(LLMError) as info:
        for piece in provider.stream_chat(messages or hello()):
            received.append(piece)  # noqa: PERF402 - keep pieces from before the error
    error = info.value
    assert_one_sentence(str(error))
    assert error.exit_code == 7 and error.__suppress_context__
    return received, error


# --- the happy path ------------------------------------------------------------------------


def test_streams_token_by_token(server: FakeOllamaServer) -> None:
    server.queue_reply("A red shoe on grass.")
    pieces = list(make(server).stream_chat(hello()))
    assert pieces == ["A", " red", " shoe", " on", " grass."]


def test_sends_model_messages_and_images_as_the_real_client_does(
    server: FakeOllamaServer,
) -> None:
    server.queue_reply("Shoes.")
    photo = jpeg()
    messages = [
        ChatMessage("system", "You help label photos."),
        ChatMessage("user", "Which category?", images=[ImageInput.from_bytes(photo, "IMG_1.jpg")]),
    ]
    assert make(server, "qwen2.5vl").chat(messages) == "Shoes."

    request = server.chat_requests[-1]
    body = request.json
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert body["model"] == "qwen2.5vl" and body["stream"] is True
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You help label photos."}
    assert user["role"] == "user"
    assert user["content"].startswith("Which category?")
    assert "Image 1: IMG_1.jpg" in user["content"] and "<untrusted-data" in user["content"]
    [encoded] = user["images"]
    assert base64.b64decode(encoded) == photo
    decoded = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert decoded.format == "JPEG" and decoded.size == (8, 6)
    assert "authorization" not in request.headers  # a local Ollama gets no credentials


def test_list_models_and_model_info(server: FakeOllamaServer) -> None:
    provider = make(server)
    names = {m.name: m for m in provider.list_models()}
    assert set(names) == {"qwen2.5vl:latest", "llava:latest", "llama3.2:latest"}
    assert names["qwen2.5vl:latest"].vision is True and names["llama3.2:latest"].vision is None
    info = provider.model_info()
    assert (info.name, info.installed, info.vision) == ("llava", True, True)
    assert server.requests[-1].path == "/api/show" and server.requests[-1].json == {
        "model": "llava"
    }
    text_only = make(server, "llama3.2").model_info()
    assert text_only.installed and text_only.vision is False
    missing = make(server, "moondream").model_info()
    assert (missing.installed, missing.vision) == (False, True)  # guessed from the name


def test_model_info_on_old_ollama_without_capabilities() -> None:
    with FakeOllamaServer(models={"llava:latest": None, "mistral:latest": None}) as old:
        assert make(old, "llava").model_info().vision is True  # families contain "clip"
    with FakeOllamaServer(models={"mistral:latest": None}, vision_family=False) as old:
        assert make(old, "mistral").model_info().vision is None  # unknown, not False


def test_host_comes_from_ollama_host_env(server: FakeOllamaServer) -> None:
    server.queue_reply("hi")
    provider = OllamaProvider("llava", env={"OLLAMA_HOST": f"127.0.0.1:{server.port}"})
    assert provider.base_url == server.url and provider.chat(hello()) == "hi"


def test_api_key_goes_only_to_the_authorization_header(server: FakeOllamaServer) -> None:
    provider = make(server, api_key=KEY)
    provider.chat(hello())
    assert server.chat_requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(provider) and KEY not in str(provider.describe())
    assert provider.describe()["key"] == "oll…6789"


# --- failures ------------------------------------------------------------------------------


def test_connection_refused_says_start_ollama() -> None:
    port = free_port()
    provider = OllamaProvider("llava", base_url=f"http://127.0.0.1:{port}", env={})
    _, error = failure(provider)
    assert str(error) == (
        f"Ollama is not running at http://127.0.0.1:{port}: start it with `ollama serve`, "
        "or choose another provider with `duetml llm use passive openai:gpt-4o`."
    )
    with pytest.raises(LLMError, match="is not running"):
        provider.list_models()


def test_agent_name_appears_in_the_advice() -> None:
    provider = OllamaProvider(
        "llava", base_url=f"http://127.0.0.1:{free_port()}", env={}, agent="proactive"
    )
    _, error = failure(provider)
    assert "`duetml llm use proactive openai:gpt-4o`" in str(error)


def test_missing_model_says_ollama_pull(server: FakeOllamaServer) -> None:
    _, error = failure(make(server, "llava:34b"))
    assert str(error).startswith(
        f"The model 'llava:34b' is not installed in Ollama at {server.url}: run "
        "`ollama pull llava:34b`"
    )
    assert len(server.chat_requests) == 1  # a 404 is not retried


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorized(server: FakeOllamaServer, status: int) -> None:
    server.queue_status(status)
    _, error = failure(make(server))
    assert f"(HTTP {status})" in str(error) and "OLLAMA_API_KEY" in str(error)


@pytest.mark.parametrize("after", [0, 2])
def test_malformed_json_line(server: FakeOllamaServer, after: int) -> None:
    server.queue_malformed(after_chunks=after)
    received, error = failure(make(server))
    assert len(received) == after
    assert "could not read" in str(error) and "Ollama server" in str(error)


def test_error_line_inside_the_stream(server: FakeOllamaServer) -> None:
    server.queue_stream_error("out of memory", after_chunks=1)
    received, error = failure(make(server))
    assert received == ["one"]
    assert str(error) == (
        "Ollama reported an error while answering (out of memory): try again, or check the "
        "Ollama log."
    )


def test_malformed_or_hanging_model_list(server: FakeOllamaServer) -> None:
    server.queue_malformed(endpoint="models")
    with pytest.raises(LLMError, match="could not read"):
        make(server).list_models()
    server.queue_hang(endpoint="show")
    started = time.monotonic()
    with pytest.raises(LLMError, match="did not answer within 0.5 seconds"):
        make(server, timeout=QUICK).model_info()
    assert time.monotonic() - started < 3


def test_key_never_reaches_messages_or_logs(
    server: FakeOllamaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make(server, api_key=KEY, timeout=QUICK)
    server.queue_reply("ok")
    server.queue_status(500, body={"error": f"proxy rejected token {KEY}"}, times=3)
    server.queue_cut(after_chunks=1)
    server.queue_hang()
    messages = [provider.chat(hello())]
    for _ in range(3):
        with pytest.raises(LLMError) as info:
            provider.chat(hello())
        messages.append(str(info.value))
    messages += [repr(provider), str(provider), str(provider.describe())]
    assert "oll…6789" in messages[1]  # the echoed key was masked, not dropped silently
    assert caplog.records, "the provider should have logged something at DEBUG"
    for text in [*messages, caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert KEY not in text
