"""Ollama, duetml's default provider: the model runs on this machine, so photos stay here.

Talks to Ollama through the official `ollama` client, imported on first use so that
`duetml --help` never pays for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from duetml.llm import window
from duetml.llm.base import (
    ConnectionDropped,
    Failure,
    IncompleteAnswer,
    ModelProfile,
    ToolStreamingProvider,
    close_iterator,
    parse_retry_after,
)
from duetml.llm.privacy import display_url
from duetml.llm.types import (
    ChatMessage,
    MemoryUse,
    ModelInfo,
    ToolCall,
    ToolSpec,
    parse_tool_arguments,
)
from duetml.llm.vision import guess_vision

if TYPE_CHECKING:
    import httpx
    import ollama

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434

# Families Ollama reports for models that carry an image encoder, for servers older than the
# `capabilities` field (Ollama < 0.6.4). `projector_info` would say the same, but the `ollama`
# client drops that field while parsing, so it cannot be read through the client.
_VISION_FAMILIES = frozenset({"clip", "mllama"})


def normalize_host(host: str) -> str:
    """A full URL for an OLLAMA_HOST-style value, with the same defaults as Ollama itself.

    "1.2.3.4" -> http://1.2.3.4:11434, ":8080" -> http://127.0.0.1:8080, a URL with a scheme
    but no port gets 80/443; user and password are dropped so they never reach a log.
    """
    text = host.strip()
    scheme_given = "://" in text
    parts = urlsplit(text if scheme_given else f"http://{text}")
    scheme = parts.scheme.lower() or "http"
    hostname = parts.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    try:
        port = parts.port
    except ValueError:
        # Not a default in its place: the caller refuses the address as it was written.
        return text
    if port is None:
        port = DEFAULT_PORT if not scheme_given else (443 if scheme == "https" else 80)
    return urlunsplit((scheme, f"{hostname}:{port}", parts.path.rstrip("/"), "", ""))


def _vision_from_show(shown: Any) -> bool | None:
    capabilities = getattr(shown, "capabilities", None)
    if capabilities is not None:
        return "vision" in capabilities
    details = getattr(shown, "details", None)
    families = set(getattr(details, "families", None) or ())
    if families & _VISION_FAMILIES:
        return True
    model_info = getattr(shown, "modelinfo", None) or {}
    if any(".vision." in key for key in model_info):
        return True
    return None


class OllamaProvider(ToolStreamingProvider):
    name: ClassVar[str] = "ollama"
    needs_key: ClassVar[bool] = False
    # Only for Ollama behind an authenticating proxy or ollama.com; a local one needs none.
    key_env_var: ClassVar[str | None] = "OLLAMA_API_KEY"
    # qwen2.5vl rather than llava: it reads text in photos and follows instructions much better
    # than the 2023-era llava, Ollama reports its "vision" capability, and its 7B build still
    # runs on a 16 GB laptop. llava stays a fine choice for older or smaller machines.
    default_model: ClassVar[str | None] = "qwen2.5vl"

    def __init__(self, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._client_instance: ollama.Client | None = None
        # Retry-After is read from the raw response by an httpx hook, because the ollama
        # client's ResponseError keeps only the status and the body. Thread-local, because two
        # agents may share one provider from different threads.
        self._seen = threading.local()

    def _resolve_base_url(self, base_url: str | None, env: Mapping[str, str]) -> str:
        return normalize_host(base_url or env.get("OLLAMA_HOST") or DEFAULT_HOST)

    # --- the client ------------------------------------------------------------------------

    def _client(self) -> ollama.Client:
        if self._client_instance is None:
            import httpx
            import ollama

            headers = {"authorization": f"Bearer {self._key.reveal()}"} if self._key else None
            self._client_instance = ollama.Client(
                host=self.base_url,
                timeout=httpx.Timeout(self.timeout.read, connect=self.timeout.connect),
                headers=headers,
                # Every request (redirects too) goes to the chosen server or nowhere.
                event_hooks={
                    "request": [self.refuse_other_servers],
                    "response": [self._remember_response],
                },
                # A proxy from the environment must never see traffic meant for this machine.
                trust_env=not self.is_local(),
            )
        return self._client_instance

    def server_name(self) -> str:
        return f"Ollama at {display_url(self.base_url)}"

    def _remember_response(self, response: httpx.Response) -> None:
        self._seen.retry_after = parse_retry_after(response.headers)

    def _encode(self, message: ChatMessage) -> dict[str, Any]:
        encoded: dict[str, Any] = {"role": message.role, "content": message.text_with_labels()}
        if message.images:
            # Raw bytes: the client base64-encodes them; a base64 *string* would first be
            # tried as a file path by the client.
            encoded["images"] = [image.data for image in message.images]
        return encoded

    # --- hooks -----------------------------------------------------------------------------

    def _sizing(self, messages: list[ChatMessage]) -> window.Exchange:
        """The request's size and the num_ctx to ask: without it Ollama cuts the front.

        num_ctx only grows within a process for one server and model (Ollama reloads the
        model whenever it changes, and both agents usually share one model).
        """
        exchange = self.current_exchange() or window.Exchange()
        profile = self.model_profile()
        size = window.estimate(messages, profile.family)
        memory = window.memory_for(display_url(self.base_url) or "", self.model)
        limit = self.context_window() or window.UNKNOWN_CONTEXT_LENGTH
        num_ctx = window.num_ctx_for(size, limit, at_least=min(memory.num_ctx, limit))
        memory.num_ctx = max(memory.num_ctx, num_ctx)
        same_ctx = memory.last_ctx == num_ctx
        exchange.size = size
        exchange.num_ctx = num_ctx
        exchange.context_length = profile.context_length
        exchange.expected_floor = window.uncached_floor(
            messages, memory.last_messages if same_ctx else None, profile.family
        )
        memory.last_messages, memory.last_ctx = list(messages), num_ctx
        return exchange

    def supports_tools(self) -> bool:
        """Ollama refuses tools for a model without the "tools" capability (HTTP 400)."""
        return self.model_info().tools is True

    def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec] | None
    ) -> Iterator[str | ToolCall]:
        client = self._client()
        self._seen.retry_after = None
        exchange = self._sizing(messages)
        extra: Any = {"tools": [t.as_openai() for t in tools]} if tools else {}
        parts = client.chat(
            model=self.model,
            messages=[self._encode(m) for m in messages],
            stream=True,
            options={"num_ctx": exchange.num_ctx},
            **extra,
        )
        finished = False
        calls: list[ToolCall] = []
        try:
            for part in parts:
                message = part.message
                text = message.content if message is not None else None
                if text:
                    yield text
                for call in (message.tool_calls if message is not None else None) or ():
                    calls.append(
                        ToolCall(call.function.name, parse_tool_arguments(call.function.arguments))
                    )
                if part.done:
                    # Not `break`: reading the body to its end lets httpx reuse the connection.
                    finished = True
                    exchange.prompt_eval_count = part.prompt_eval_count
        finally:
            close_iterator(parts)
        if not finished:
            raise IncompleteAnswer()
        yield from calls

    def _list_models_once(self) -> list[ModelInfo]:
        listed = self._client().list()
        models: list[ModelInfo] = []
        for entry in listed.models:
            name = entry.model or ""
            families = set(getattr(entry.details, "families", None) or ())
            vision = True if families & _VISION_FAMILIES else guess_vision(name)
            models.append(ModelInfo(name=name, installed=True, vision=vision))
        return sorted(models, key=lambda m: m.name)

    def _model_info_once(self) -> ModelInfo:
        import ollama

        try:
            shown = self._client().show(self.model)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                return ModelInfo(self.model, installed=False, vision=guess_vision(self.model))
            raise
        capabilities = getattr(shown, "capabilities", None)
        tools = None if capabilities is None else "tools" in capabilities
        return ModelInfo(self.model, installed=True, vision=_vision_from_show(shown), tools=tools)

    def _profile_once(self) -> ModelProfile:
        """From `/api/show`: `<architecture>.context_length` and the image-cost family."""
        import ollama

        try:
            shown = self._client().show(self.model)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                return ModelProfile(window.UNKNOWN_CONTEXT_LENGTH, window.family_for(self.model))
            raise
        info = getattr(shown, "modelinfo", None) or {}
        architecture = info.get("general.architecture")
        length = info.get(f"{architecture}.context_length") if architecture else None
        known = int(length) if isinstance(length, (int, float)) and length > 0 else None
        return ModelProfile(
            # Ollama always has some window; one it does not report is assumed modest.
            known or window.UNKNOWN_CONTEXT_LENGTH,
            window.family_for(self.model, architecture),
            architecture,
        )

    def memory_use(self) -> MemoryUse:
        """Bytes the model takes: `/api/ps` when loaded (with its context), else its file size."""
        client = self._client()
        wanted = {self.model, f"{self.model}:latest"}
        for running in self._with_retries(client.ps).models:
            if running.model in wanted or running.name in wanted:
                return MemoryUse(running.size, True, getattr(running, "context_length", None))
        for listed in self._with_retries(client.list).models:
            if listed.model in wanted:
                return MemoryUse(listed.size, False)
        return MemoryUse(None, False)

    def _classify(self, exc: Exception, *, mid_stream: bool) -> Failure:
        import httpx
        import ollama

        url = display_url(self.base_url)
        server = self.server_name()
        other = self.use_hint("openai:gpt-4o")
        if isinstance(exc, IncompleteAnswer):
            return self.incomplete_failure(server)
        if isinstance(exc, httpx.TimeoutException):
            connect = isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            return self.timeout_failure(server, connect=connect, mid_stream=mid_stream)
        # The client raises the builtin ConnectionError for plain requests but lets
        # httpx.ConnectError through for streams.
        if isinstance(exc, (httpx.ConnectError, ConnectionError)):
            if self.is_local():
                return Failure(
                    f"Ollama is not running at {url}: start it with `ollama serve`, "
                    f"or choose another provider with {other}."
                )
            return Failure(
                f"Could not reach Ollama at {url}: check that it is running there and that "
                f"OLLAMA_HOST is right, or choose another provider with {other}."
            )
        if isinstance(exc, (ConnectionDropped, httpx.TransportError)):
            return self.dropped_failure(server, mid_stream=mid_stream)
        if isinstance(exc, ollama.ResponseError):
            return self._classify_status(exc, server)
        if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
            # json.JSONDecodeError and pydantic's ValidationError are ValueErrors.
            return self.malformed_failure(server, "an Ollama server")
        return Failure(f"{server} failed unexpectedly ({type(exc).__name__}): try again.")

    def _classify_status(self, exc: ollama.ResponseError, server: str) -> Failure:
        status = exc.status_code
        detail = self.detail(exc.error)
        retry_after = getattr(self._seen, "retry_after", None)
        if status == -1:  # an {"error": ...} line inside a 200 stream
            return Failure(
                f"Ollama reported an error while answering ({detail}): try again, or check "
                "the Ollama log."
            )
        overflow, limit = window.overflow_limit(str(exc.error))
        if overflow and status in (400, 413, 500):
            return Failure(
                f"{server} refused the request as longer than the model's context ({detail}): "
                "choose a model with a larger context.",
                overflow=True,
                limit=limit,
            )
        if status == 404 and "model" in detail.lower():
            return Failure(
                f"The model '{self.model}' is not installed in {server}: run "
                f"`ollama pull {self.model}`, or choose another model with "
                f"{self.use_hint('ollama:llava')}."
            )
        if status == 404:
            return Failure(
                f"{server} does not know this request (HTTP 404): update Ollama, or check "
                "that OLLAMA_HOST points at Ollama."
            )
        if status in (401, 403):
            return Failure(
                f"{server} refused the request (HTTP {status}): check OLLAMA_API_KEY or the "
                "proxy in front of Ollama."
            )
        if status == 429 or status >= 500:
            wait = f", asking to wait {retry_after:g} seconds" if retry_after else ""
            return Failure(
                f"{server} could not answer (HTTP {status}: {detail}){wait}: try again in a "
                "minute, check the Ollama log, or choose a smaller model.",
                retryable=True,
                retry_after=retry_after,
            )
        return Failure(
            f"{server} refused the request (HTTP {status}: {detail}): check the model name "
            "and whether it accepts images."
        )
