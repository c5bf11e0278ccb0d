"""Loopback HTTP servers that speak the real Ollama and OpenAI wire formats, for tests.

The official clients are driven against these over real sockets on 127.0.0.1, so a test sees
exactly what the client sends and how it reacts to what a server really does (NDJSON and SSE
streams, status codes, Retry-After, hangs, dropped connections). Nothing is mocked.

Use
---
    from llm_fakes import FakeOllamaServer, FakeOpenAIServer

    def test_reply():
        with FakeOllamaServer() as server:          # or conftest's `ollama` (OLLAMA_HOST set)
            server.queue_reply("A red shoe.")       # streamed token by token
            provider = OllamaProvider("llava", base_url=server.url)
            assert provider.chat([ChatMessage("user", "What is it?")]) == "A red shoe."
            body = server.chat_requests[-1].json    # what the client really sent
            assert body["model"] == "llava"

Replies are consumed in order by the chat endpoint; with none queued it answers
`default_reply` ("ok"). Each `queue_*` call plans one response:

    queue_reply(text, chunks=None)             a normal streamed answer
    queue_status(429, retry_after=0)           an error status (realistic JSON body; `headers=`,
                                               `body=` and `times=` to repeat it)
    queue_hang(after_chunks=None)              stall before headers (None) or after N chunks
    queue_cut(text, after_chunks=2)            close the socket mid-stream (chunked body unfinished)
    queue_truncated(text, after_chunks=2)      end the body cleanly but without the final marker
    queue_malformed(after_chunks=0)            a line that is not JSON / not valid SSE
    queue_stream_error(message, after_chunks)  the server's in-band error object
    queue_tool_calls([(name, args)], text="")  text (if any), then the model's tool calls in
                                               the provider's own wire format

    queue_recorded(name)                       replay what a real server answered, recorded in
                                               tests/fixtures/llama_cpp/<name>.json by
                                               bench/bench_real_server.py (status, type, body)

`FakeOpenAIServer(text_only=True)` answers every chat request that carries an image the way
llama.cpp's server does for a text-only model (its recorded empty 200 stream), and others
normally.

`queue_status`, `queue_hang` and `queue_malformed` also take `endpoint="models"` (the model
list) or, for Ollama, `endpoint="show"`. `server.requests` records every request
(`RecordedRequest`: method, path, lower-cased headers, raw body, parsed `json`);
`server.chat_requests` only the chat ones.

Ollama: `FakeOllamaServer(models={"llava:latest": ["completion", "vision"]})`; a capability
list of None mimics Ollama < 0.6.4 (no `capabilities` field; families carry "clip" when
`vision_family=True`). Chatting with a model that is not listed gets Ollama's real 404.

OpenAI: `FakeOpenAIServer(models=["gpt-4o"], api_key="sk-...")`; with `api_key` set, requests
without `Authorization: Bearer <key>` get OpenAI's 401; `echo_key_in_errors=True` makes that
body quote the key in full, like a hostile or careless server, to test redaction.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

# Stalls end at this point at the latest, or as soon as the server stops.
MAX_HANG_SECONDS = 10.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclass
class _Plan:
    kind: str  # reply | status | hang | cut | truncated | malformed | stream_error | recorded
    chunks: list[str] = field(default_factory=list)
    after: int | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    message: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def tokens(text: str) -> list[str]:
    """Split like a tokenizer would, keeping spaces: "a red shoe" -> ["a", " red", " shoe"]."""
    return re.findall(r"\s*\S+|\s+$", text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: _FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or hang up are the point of many tests, not errors.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        recorded = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            json=parsed,
        )
        self.server.fake._handle(self, recorded)

    do_GET = _dispatch
    do_POST = _dispatch

    # --- writing helpers used by the fakes -------------------------------------------------

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def drop_connection(self) -> None:
        """Close the socket abruptly, leaving the chunked body unfinished."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _FakeServer:
    """Common machinery: a threaded server on 127.0.0.1:0, planned replies, recorded requests."""

    default_reply = "ok"
    chat_path = ""
    # Any loopback address works (127.0.0.2 is another origin than 127.0.0.1): see `on`.
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._plans: dict[str, deque[_Plan]] = {"chat": deque(), "models": deque(), "show": deque()}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def on(self, host: str) -> Any:
        """Listen on another loopback address (before `start`): another server to the client."""
        self.host = host
        return self

    def start(self) -> _FakeServer:
        self._httpd = _Server((self.host, 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases stalled handlers at once
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start the server first"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- planning --------------------------------------------------------------------------

    def _queue(self, endpoint: str, plan: _Plan) -> None:
        with self._lock:
            self._plans[endpoint].append(plan)

    def _next(self, endpoint: str) -> _Plan | None:
        with self._lock:
            queue = self._plans[endpoint]
            return queue.popleft() if queue else None

    def queue_reply(self, text: str, *, chunks: Sequence[str] | None = None) -> None:
        self._queue("chat", _Plan("reply", list(chunks) if chunks is not None else tokens(text)))

    def queue_status(
        self,
        status: int,
        *,
        retry_after: float | str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str = "chat",
        times: int = 1,
    ) -> None:
        headers = dict(headers or {})
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        for _ in range(times):
            self._queue(endpoint, _Plan("status", status=status, headers=headers, body=body))

    def queue_hang(
        self,
        *,
        after_chunks: int | None = None,
        text: str = "one two three four",
        endpoint: str = "chat",
    ) -> None:
        self._queue(endpoint, _Plan("hang", tokens(text), after=after_chunks))

    def queue_cut(self, text: str = "one two three four", *, after_chunks: int = 2) -> None:
        self._queue("chat", _Plan("cut", tokens(text), after=after_chunks))

    def queue_truncated(self, text: str = "one two three four", *, after_chunks: int = 2) -> None:
        self._queue("chat", _Plan("truncated", tokens(text), after=after_chunks))

    def queue_malformed(
        self, *, after_chunks: int = 0, text: str = "one two three", endpoint: str = "chat"
    ) -> None:
        self._queue(endpoint, _Plan("malformed", tokens(text), after=after_chunks))

    def queue_stream_error(
        self, message: str = "model crashed", *, after_chunks: int = 1, text: str = "one two three"
    ) -> None:
        self._queue(
            "chat", _Plan("stream_error", tokens(text), after=after_chunks, message=message)
        )

    def queue_recorded(self, name: str) -> None:
        self._queue("chat", _Plan("recorded", body=recorded_answer(name)))

    def queue_tool_calls(
        self, calls: Sequence[tuple[str, dict[str, Any]]], *, text: str = ""
    ) -> None:
        self._queue("chat", _Plan("tool", tokens(text) if text else [], calls=list(calls)))

    # --- inspection ------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.split("?")[0] == self.chat_path]

    # --- serving ---------------------------------------------------------------------------

    def _handle(self, handler: _Handler, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
        self.route(handler, request)

    def route(self, handler: _Handler, request: RecordedRequest) -> None:
        raise NotImplementedError

    def _stall(self) -> None:
        self._stopping.wait(MAX_HANG_SECONDS)

    def _serve_simple(self, handler: _Handler, plan: _Plan | None, payload: Any) -> None:
        """Non-streaming endpoints: a JSON payload unless a failure was planned."""
        if plan is None:
            handler.send_json(200, payload)
        elif plan.kind == "status":
            handler.send_json(plan.status, plan.body or self.error_body(plan.status), plan.headers)
        elif plan.kind == "hang":
            self._stall()
            handler.drop_connection()
        elif plan.kind == "malformed":
            handler.send_raw(200, b"<html>this is not JSON", "application/json")
        else:
            raise ValueError(f"plan {plan.kind!r} only applies to the chat endpoint")

    def _serve_chat(self, handler: _Handler, plan: _Plan, model: str) -> None:
        if plan.kind == "recorded":
            answer = plan.body
            data = answer["body"].encode()
            if answer["headers"].get("transfer-encoding") == "chunked":
                handler.send_response(answer["status"])
                handler.send_header("Content-Type", answer["headers"]["content-type"])
                handler.send_header("Transfer-Encoding", "chunked")
                handler.end_headers()
                if data:
                    handler.write_chunk(data)
                handler.end_chunked()
            else:
                handler.send_raw(answer["status"], data, answer["headers"]["content-type"])
            return
        if plan.kind == "status":
            handler.send_json(plan.status, plan.body or self.error_body(plan.status), plan.headers)
            return
        if plan.kind == "hang" and plan.after is None:
            self._stall()
            handler.drop_connection()
            return
        handler.start_chunked(self.stream_content_type)
        for event in self.first_events(model):
            handler.write_chunk(event)
        stop_at = len(plan.chunks) if plan.kind in ("reply", "tool") else plan.after
        for index, chunk in enumerate(plan.chunks):
            if stop_at is not None and index >= stop_at:
                break
            handler.write_chunk(self.token_event(model, chunk))
        if plan.kind == "reply":
            for event in self.final_events(model):
                handler.write_chunk(event)
            handler.end_chunked()
        elif plan.kind == "tool":
            for event in self.tool_events(model, plan.calls):
                handler.write_chunk(event)
            handler.end_chunked()
        elif plan.kind == "cut":
            handler.drop_connection()
        elif plan.kind == "hang":
            self._stall()
            handler.drop_connection()
        elif plan.kind == "truncated":
            handler.end_chunked()
        elif plan.kind == "malformed":
            handler.write_chunk(self.malformed_event())
            handler.end_chunked()
        elif plan.kind == "stream_error":
            handler.write_chunk(self.error_event(plan.message))
            handler.end_chunked()

    # --- wire format, per provider ---------------------------------------------------------

    stream_content_type = ""

    def error_body(self, status: int) -> Any:
        raise NotImplementedError

    def first_events(self, model: str) -> list[bytes]:
        return []

    def token_event(self, model: str, text: str) -> bytes:
        raise NotImplementedError

    def final_events(self, model: str) -> list[bytes]:
        raise NotImplementedError

    def malformed_event(self) -> bytes:
        raise NotImplementedError

    def tool_events(self, model: str, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
        raise NotImplementedError

    def error_event(self, message: str) -> bytes:
        raise NotImplementedError


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def recorded_answer(name: str) -> dict[str, Any]:
    """A real server's answer recorded by bench/bench_real_server.py (see its --record)."""
    answer: dict[str, Any] = json.loads((FIXTURES / "llama_cpp" / f"{name}.json").read_text())
    return answer


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def _latest(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def prompt_tokens(text: str) -> list[str]:
    """A simple tokenizer for the fake's context: words and punctuation marks."""
    return re.findall(r"\w+|[^\w\s]", text)


class FakeOllamaServer(_FakeServer):
    """Speaks Ollama's /api/chat (NDJSON stream), /api/tags, /api/show and /api/ps.

    Like a real Ollama, it fits the prompt into a context window: `options.num_ctx` when the
    request sets it (and `honour_num_ctx`), else `default_num_ctx` (2,048). A longer prompt
    loses its FRONT: only the last N tokens are kept (words and punctuation count as tokens,
    each image as `image_tokens`, or by default one per 28 x 28 pixels for a Qwen model, 256
    for Gemma and 576 for others, like LLaVA's base view), and
    `prompt_eval_count` reports what was kept.
    `server.seen_prompts` holds, per chat request, the text the "model" really saw.
    `context_length` is what /api/show reports as `<architecture>.context_length`.
    """

    chat_path = "/api/chat"
    stream_content_type = "application/x-ndjson"

    DEFAULT_MODELS: ClassVar[dict[str, list[str] | None]] = {
        "qwen2.5vl:latest": ["completion", "vision"],
        "llava:latest": ["completion", "vision"],
        "llama3.2:latest": ["completion", "tools"],
    }
    ARCHITECTURES: ClassVar[dict[str, str]] = {"qwen2.5vl:latest": "qwen25vl"}

    def __init__(
        self,
        models: Mapping[str, Sequence[str] | None] | None = None,
        *,
        vision_family: bool = True,
        default_num_ctx: int = 2048,
        honour_num_ctx: bool = True,
        context_length: int = 32768,
        image_tokens: int | None = None,
        model_size: int = 6_000_000_000,
    ) -> None:
        super().__init__()
        source = self.DEFAULT_MODELS if models is None else models
        self.models: dict[str, list[str] | None] = {
            _latest(name): (list(caps) if caps is not None else None)
            for name, caps in source.items()
        }
        self.vision_family = vision_family
        self.default_num_ctx = default_num_ctx
        self.honour_num_ctx = honour_num_ctx
        self.context_length = context_length
        self.image_tokens = image_tokens
        self.model_size = model_size
        self.seen_prompts: list[str] = []
        self.loaded: dict[str, int] = {}  # model -> num_ctx it was loaded with
        self._evaluated = threading.local()

    def _image_cost(self, model: str, image: str) -> int:
        if self.image_tokens is not None:
            return self.image_tokens
        if "gemma" in model:
            return 256  # Gemma 3: every image becomes 256 tokens
        if "qwen" not in model:
            return 576  # a fixed-size encoder, like LLaVA's 336 px view
        from PIL import Image

        with Image.open(io.BytesIO(base64.b64decode(image))) as opened:
            width, height = opened.size
        return max(round(width / 28), 1) * max(round(height / 28), 1)

    def evaluate(self, body: Mapping[str, Any]) -> int:
        """Fit the request's prompt into the window like Ollama: keep the last N tokens."""
        options = body.get("options") or {}
        asked = options.get("num_ctx") if self.honour_num_ctx else None
        window = int(asked) if asked else self.default_num_ctx
        prompt: list[str] = []
        for message in body.get("messages") or []:
            prompt.append(f"<{message.get('role')}>")
            for image in message.get("images") or []:
                prompt += ["<image>"] * self._image_cost(str(body.get("model", "")), image)
            prompt += prompt_tokens(str(message.get("content", "")))
        kept = prompt[-window:]
        with self._lock:
            self.seen_prompts.append(" ".join(t for t in kept if t != "<image>"))
            self.loaded[_latest(str(body.get("model", "")))] = window
        return len(kept)

    def _details(self, name: str) -> dict[str, Any]:
        caps = self.models.get(name)
        families = ["llama"]
        if caps is None and self.vision_family:
            families.append("clip")
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": families,
            "parameter_size": "7B",
            "quantization_level": "Q4_K_M",
        }

    def route(self, handler: _Handler, request: RecordedRequest) -> None:
        path = request.path.split("?")[0]
        if path == "/api/tags" and request.method == "GET":
            tags = {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2025-05-01T10:00:00.000000000Z",
                        "size": self.model_size,
                        "digest": "0" * 64,
                        "details": self._details(name),
                    }
                    for name in self.models
                ]
            }
            self._serve_simple(handler, self._next("models"), tags)
        elif path == "/api/show" and request.method == "POST":
            plan = self._next("show")
            name = _latest(str((request.json or {}).get("model", "")))
            if plan is None and name not in self.models:
                handler.send_json(404, {"error": f"model '{name.split(':')[0]}' not found"})
                return
            shown: dict[str, Any] = {
                "license": "",
                "modelfile": f"FROM {name}",
                "parameters": "",
                "template": "{{ .Prompt }}",
                "details": self._details(name),
                "model_info": {
                    "general.architecture": self.ARCHITECTURES.get(name, "llama"),
                    f"{self.ARCHITECTURES.get(name, 'llama')}.context_length": (
                        self.context_length
                    ),
                },
                "modified_at": "2025-05-01T10:00:00.000000000Z",
            }
            caps = self.models.get(name)
            if caps is not None:
                shown["capabilities"] = caps
            self._serve_simple(handler, plan, shown)
        elif path == self.chat_path and request.method == "POST":
            plan = self._next("chat") or _Plan("reply", tokens(self.default_reply))
            model = str((request.json or {}).get("model", ""))
            if plan.kind != "status" and _latest(model) not in self.models:
                handler.send_json(
                    404, {"error": f'model "{model}" not found, try pulling it first'}
                )
                return
            if plan.kind != "status":
                self._evaluated.count = self.evaluate(request.json or {})
            self._serve_chat(handler, plan, model)
        elif path == "/api/ps" and request.method == "GET":
            with self._lock:
                loaded = dict(self.loaded)
            running = {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "size": self.model_size + 60_000 * num_ctx,
                        "digest": "0" * 64,
                        "details": self._details(name),
                        "expires_at": "2099-01-01T00:00:00Z",
                        "size_vram": 0,
                        "context_length": num_ctx,
                    }
                    for name, num_ctx in loaded.items()
                ]
            }
            self._serve_simple(handler, None, running)
        else:
            handler.send_raw(404, b"404 page not found", "text/plain")

    def error_body(self, status: int) -> Any:
        messages = {
            401: "unauthorized",
            429: "too many requests",
            500: "llama runner process has terminated: exit status 2",
            503: "server busy, please try again.  maximum pending requests exceeded",
        }
        return {"error": messages.get(status, f"error {status}")}

    def token_event(self, model: str, text: str) -> bytes:
        line = {
            "model": model,
            "created_at": _now_iso(),
            "message": {"role": "assistant", "content": text},
            "done": False,
        }
        return json.dumps(line).encode() + b"\n"

    def final_events(self, model: str) -> list[bytes]:
        line = {
            "model": model,
            "created_at": _now_iso(),
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            "total_duration": 1_234_567_890,
            "load_duration": 12_345_678,
            "prompt_eval_count": getattr(self._evaluated, "count", 42),
            "prompt_eval_duration": 123_456_789,
            "eval_count": 7,
            "eval_duration": 987_654_321,
        }
        return [json.dumps(line).encode() + b"\n"]

    def malformed_event(self) -> bytes:
        return b'{"model": "x", "message": {"role": "assistant", "content": "unterminated\n'

    def tool_events(self, model: str, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
        # Ollama sends all calls whole in one message (arguments as an object), then "done".
        line = {
            "model": model,
            "created_at": _now_iso(),
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": name, "arguments": args}} for name, args in calls
                ],
            },
            "done": False,
        }
        return [json.dumps(line).encode() + b"\n", *self.final_events(model)]

    def error_event(self, message: str) -> bytes:
        return json.dumps({"error": message}).encode() + b"\n"


class FakeOpenAIServer(_FakeServer):
    """Speaks OpenAI's /v1/chat/completions (SSE stream) and /v1/models."""

    chat_path = "/v1/chat/completions"
    stream_content_type = "text/event-stream; charset=utf-8"

    def __init__(
        self,
        models: Sequence[str] = ("gpt-4o", "gpt-4o-mini"),
        *,
        api_key: str | None = None,
        echo_key_in_errors: bool = False,
        max_model_len: int | None = None,
        text_only: bool = False,
    ) -> None:
        super().__init__()
        self.text_only = text_only
        self.models = list(models)
        self.max_model_len = max_model_len  # listed per model, like vLLM
        self.api_key = api_key
        self.echo_key_in_errors = echo_key_in_errors
        self._counter = 0

    @property
    def url(self) -> str:
        """The base URL as users configure it (with /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def _authorized(self, handler: _Handler, request: RecordedRequest) -> bool:
        if self.api_key is None:
            return True
        presented = request.headers.get("authorization", "")
        if presented == f"Bearer {self.api_key}":
            return True
        shown = presented.removeprefix("Bearer ")
        if not self.echo_key_in_errors:
            shown = f"{shown[:3]}*****{shown[-4:]}"
        handler.send_json(
            401,
            {
                "error": {
                    "message": f"Incorrect API key provided: {shown}. You can find your API "
                    "key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
        return False

    def route(self, handler: _Handler, request: RecordedRequest) -> None:
        path = request.path.split("?")[0]
        if path == "/v1/models" and request.method == "GET":
            if not self._authorized(handler, request):
                return
            payload = {
                "object": "list",
                "data": [
                    {
                        "id": name,
                        "object": "model",
                        "created": 1715367049,
                        "owned_by": "system",
                        **({"max_model_len": self.max_model_len} if self.max_model_len else {}),
                    }
                    for name in self.models
                ],
            }
            self._serve_simple(handler, self._next("models"), payload)
        elif path == self.chat_path and request.method == "POST":
            if not self._authorized(handler, request):
                return
            if self.text_only and b'"image_url"' in request.body:  # planned replies wait
                streamed = bool((request.json or {}).get("stream"))
                answer = "images_stream" if streamed else "images_nostream"
                plan = _Plan("recorded", body=recorded_answer(answer))
            else:
                plan = self._next("chat") or _Plan("reply", tokens(self.default_reply))
            model = str((request.json or {}).get("model", ""))
            if plan.kind not in ("status", "recorded") and model not in self.models:
                handler.send_json(
                    404,
                    {
                        "error": {
                            "message": f"The model `{model}` does not exist or you do not have "
                            "access to it.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "model_not_found",
                        }
                    },
                )
                return
            self._counter += 1
            self._serve_chat(handler, plan, model)
        else:
            handler.send_json(
                404, {"error": {"message": "Not found", "type": "invalid_request_error"}}
            )

    def error_body(self, status: int) -> Any:
        kinds = {
            429: (
                (
                    "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3, Used 3, "
                    "Requested 1."
                ),
                "requests",
                "rate_limit_exceeded",
            ),
            500: (
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            503: (
                "The engine is currently overloaded, please try again later",
                "server_error",
                None,
            ),
        }
        message, kind, code = kinds.get(status, (f"Error {status}", "invalid_request_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def _chunk(self, model: str, delta: dict[str, Any], finish: str | None) -> bytes:
        payload = {
            "id": f"chatcmpl-fake{self._counter}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    def first_events(self, model: str) -> list[bytes]:
        # Real servers open with a role-only delta before the first token.
        return [self._chunk(model, {"role": "assistant", "content": ""}, None)]

    def token_event(self, model: str, text: str) -> bytes:
        return self._chunk(model, {"content": text}, None)

    def final_events(self, model: str) -> list[bytes]:
        return [self._chunk(model, {}, "stop"), b"data: [DONE]\n\n"]

    def malformed_event(self) -> bytes:
        return b'data: {"id": "chatcmpl-broken", "choices": [\n\n'

    def tool_events(self, model: str, calls: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
        # OpenAI streams each call as fragments: id and name first, then the JSON arguments
        # as a string cut into pieces; the finish_reason is "tool_calls".
        events = []
        for index, (name, args) in enumerate(calls):
            head = {
                "index": index,
                "id": f"call_fake{index}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            events.append(self._chunk(model, {"tool_calls": [head]}, None))
            text = json.dumps(args)
            for start in range(0, len(text), 16):
                piece = {"index": index, "function": {"arguments": text[start : start + 16]}}
                events.append(self._chunk(model, {"tool_calls": [piece]}, None))
        events.append(self._chunk(model, {}, "tool_calls"))
        events.append(b"data: [DONE]\n\n")
        return events

    def error_event(self, message: str) -> bytes:
        payload = {
            "error": {"message": message, "type": "server_error", "param": None, "code": None}
        }
        return b"data: " + json.dumps(payload).encode() + b"\n\n"
