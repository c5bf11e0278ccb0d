"""The provider interface and the retry/stream driver every provider shares.

A provider class says what it needs as class attributes (`needs_key`, `key_env_var`), and
implements four small hooks: open one stream, list models once, inspect the model once, and
turn its client's exceptions into a `Failure`. The base class owns the policy that must be the
same everywhere (security.md items 9 and 10): bounded retries that honour Retry-After, no retry
once text has reached the caller (never duplicate text), one-sentence `LLMError`s, and keys
that never reach a message, a log line or a repr.
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from duetml.errors import LLMError, LLMSettingsError
from duetml.llm import window
from duetml.llm.fencing import clean_text
from duetml.llm.privacy import (
    DEFAULT_PORTS,
    Secret,
    display_url,
    endpoint_key,
    is_local_url,
    parse_endpoint,
)
from duetml.llm.types import ChatMessage, ModelInfo, ProviderInfo, ToolCall, ToolSpec

log = logging.getLogger("duetml.llm")

T = TypeVar("T")

# An agent's answer is a few paragraphs; a reply longer than this is cut there (a broken or
# hostile server could otherwise stream without end into the page and the terminal).
MAX_REPLY_CHARS = 60_000

# A server asking for a longer pause than this is told "try later" at once: a user watching a
# spinner for minutes is worse than a clear message now.
MAX_RETRY_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 8.0
# Server-supplied detail shown to a user is cut to this; it is a hint, not a report.
MAX_DETAIL_CHARS = 160


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection, and between two pieces of the answer."""

    connect: float = 5.0
    # Generous because a local model may first have to load into memory.
    read: float = 120.0


@dataclass(frozen=True)
class Failure:
    """What a provider made of an exception: the user's sentence and whether to try again."""

    message: str
    retryable: bool = False
    retry_after: float | None = None
    # The server refused the request as longer than its context (`limit` tokens, if it said).
    overflow: bool = False
    limit: int | None = None
    # The answer broke (dropped, cut short, unreadable) rather than never connecting or
    # timing out: what a text-only server does with a request carrying photos.
    broken: bool = False


class ContextOverflowError(LLMError):
    """The server refused the request as too long for its context; `limit` when it said."""

    summary = "too long for the model's context"

    def __init__(self, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class RequestFailed(LLMError):
    """A request that failed for good, with what a caller may act on: whether it failed before
    any text reached the caller, the HTTP status if the server gave one, and the server's own
    words (key masked). The agents ask again without photos when a request with photos failed
    like that (a text-only server breaks the stream or names the content it cannot read)."""

    summary = "a request failed for good"

    def __init__(
        self,
        message: str,
        *,
        before_answer: bool,
        status: int | None,
        detail: str,
        broken: bool = False,
    ) -> None:
        super().__init__(message)
        self.before_answer = before_answer
        self.status = status
        self.detail = detail
        self.broken = broken


class ReplyTooLong(LLMError):
    """The server's answer went past MAX_REPLY_CHARS; what came before is kept."""

    summary = "the reply went past its limit"


class PreemptedError(LLMError):
    """A proactive request stopped early because a passive reply waits for the same server."""

    summary = "a passive reply took the server"


@dataclass(frozen=True)
class ModelProfile:
    """What sizing a request needs to know about the model: its window and image costs."""

    context_length: int | None
    family: window.ImageFamily
    architecture: str | None = None


class IncompleteAnswer(Exception):
    """The stream ended cleanly on the wire but without the provider's end-of-answer marker."""


class ConnectionDropped(Exception):
    """The connection broke after the response had started."""


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def close_iterator(iterator: object) -> None:
    """Close a client's stream (generator or response wrapper) so its connection is freed."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


class Provider(ABC):
    """One LLM backend for one agent; construct through `duetml.llm.registry.get_provider`."""

    name: ClassVar[str]
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    default_model: ClassVar[str | None] = None
    # False only for the "none" provider: agents check it instead of catching errors.
    enabled: ClassVar[bool] = True

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: Timeouts = Timeouts(),
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        agent: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environ: Mapping[str, str] = os.environ if env is None else env
        self.model: str = model or self.default_model or ""
        self.timeout = timeout
        self.max_retries = max(int(max_retries), 0)
        self.retry_backoff = max(float(retry_backoff), 0.0)
        # Only used to make "what to do next" sentences name the right agent.
        self.agent = agent
        key = api_key or (environ.get(self.key_env_var) if self.key_env_var else None)
        self._key: Secret | None = Secret(key) if key else None
        self.base_url: str | None = self._resolve_base_url(base_url, environ)
        if self.base_url is not None:
            # Also OPENAI_BASE_URL / OLLAMA_HOST: a URL two parsers read differently is
            # refused here, so what is shown and approved is the server the client reaches.
            try:
                parse_endpoint(self.base_url)
            except ValueError as exc:
                raise LLMSettingsError(
                    f"The {self.name} address '{self.base_url[:80]}' is not an http(s) URL "
                    f"duetml can use ({exc}): write one like http://127.0.0.1:11434."
                ) from None
        # The user's limit on the context asked of the server (small machines); the session
        # sets it from the settings.
        self.max_context: int | None = None
        self._profile: ModelProfile | None = None
        self._request = threading.local()

    # --- hooks for subclasses -------------------------------------------------------------

    @abstractmethod
    def _resolve_base_url(self, base_url: str | None, env: Mapping[str, str]) -> str | None:
        """The endpoint from the constructor, else the provider's env variable, else default."""

    @abstractmethod
    def _open_stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        """One attempt: yield text pieces; raise the client's own exceptions untouched."""

    def _open_tool_stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> Iterator[str | ToolCall]:
        """One attempt offering `tools`: text pieces and whole tool calls, in order.

        Providers whose API has no tool calling keep this default: the tools are not sent and
        the model answers in text (the agents then ask for a fenced JSON block instead).
        """
        yield from self._open_stream(messages)

    def supports_tools(self) -> bool:
        """Whether `stream_chat(..., tools=...)` really offers the tools to this model."""
        return False

    @abstractmethod
    def _list_models_once(self) -> list[ModelInfo]: ...

    @abstractmethod
    def _model_info_once(self) -> ModelInfo: ...

    @abstractmethod
    def _classify(self, exc: Exception, *, mid_stream: bool) -> Failure:
        """Turn an exception from one attempt into the user's sentence and a retry decision."""

    def _profile_once(self) -> ModelProfile:
        """The model's context length and image family; servers that say more override it."""
        return ModelProfile(None, window.family_for(self.model))

    def current_exchange(self) -> window.Exchange | None:
        """The `Exchange` of the request this thread is sending, for `_open_stream`."""
        exchange: window.Exchange | None = getattr(self._request, "exchange", None)
        return exchange

    # --- public API ------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Iterable[ChatMessage],
        exchange: window.Exchange | None = None,
        *,
        urgent: bool | None = None,
        tools: list[ToolSpec] | None = None,
        tool_calls: list[ToolCall] | None = None,
    ) -> Iterator[str]:
        """Yield the answer piece by piece; raise `LLMError` with one sentence on failure.

        Pieces already yielded stay yielded: after the first one, a failure is raised at once
        rather than retried, so the caller never sees the same text twice. `exchange`, when
        given, is filled with the request's size, the context asked and the server's count.
        A local server gets one request at a time from this process (`window.ServerGate`);
        `urgent` ones (default: all but the proactive agent's) go first, and a waiting urgent
        request stops a running non-urgent one at its next piece (`PreemptedError`). With
        `tools`, the calls the model makes are appended to `tool_calls` once the answer is
        complete (a failed attempt's calls are dropped with it).
        """
        conversation = list(messages)
        gate = self.server_gate()
        if gate is None:
            yield from self._stream_attempts(conversation, exchange, tools, tool_calls)
            return
        if urgent is None:
            urgent = self.agent != "proactive"
        with gate.hold(urgent=urgent, timeout=self.timeout.read):
            for piece in self._stream_attempts(conversation, exchange, tools, tool_calls):
                yield piece
                if not urgent and gate.urgent_waiting:
                    raise PreemptedError("A question to the assistant goes first.")

    def _stream_attempts(
        self,
        conversation: list[ChatMessage],
        exchange: window.Exchange | None,
        tools: list[ToolSpec] | None = None,
        tool_calls: list[ToolCall] | None = None,
    ) -> Iterator[str]:
        log.debug(
            "%s chat: model=%s endpoint=%s messages=%d images=%d",
            self.name,
            self.model,
            display_url(self.base_url),
            len(conversation),
            sum(len(m.images) for m in conversation),
        )
        self._request.exchange = exchange
        attempt = 0
        room = MAX_REPLY_CHARS
        while True:
            yielded = False
            calls: list[ToolCall] = []
            pieces: Iterator[str | ToolCall] = (
                self._open_tool_stream(conversation, tools)
                if tools
                else self._open_stream(conversation)
            )
            try:
                for piece in pieces:
                    if isinstance(piece, ToolCall):
                        calls.append(piece)
                    elif piece:
                        yielded = True
                        if len(piece) > room:
                            # A server that never stops (49 MB reached the page and the
                            # terminal): what came is kept, the rest is not read.
                            yield piece[:room]
                            raise ReplyTooLong(
                                f"{self.server_name()} sent a reply longer than "
                                f"{MAX_REPLY_CHARS:,} characters, so duetml stopped reading "
                                "it: try again, or choose another model."
                            )
                        room -= len(piece)
                        yield piece
                if tool_calls is not None:
                    tool_calls.extend(calls)
                return
            except LLMError as exc:
                raise self._redacted(exc) from None
            except Exception as exc:  # noqa: BLE001 - every client error becomes one sentence
                refused = _refusal_in(exc)
                if refused is not None:
                    raise self._redacted(refused) from None
                failure = self._classify(exc, mid_stream=yielded)
                delay = None if yielded else self._retry_delay(failure, attempt)
                if any(m.images for m in conversation) and _refused_photos(
                    failure, exc, self.detail(exc)
                ):
                    # Photos to a text-only server fail every time: the agents ask again
                    # without them instead (duetml.agents.text_only).
                    delay = None
                if delay is None:
                    raise self._give_up(exc, failure, attempt, before_answer=not yielded) from None
                self._wait_before_retry(exc, delay, attempt)
                attempt += 1
            finally:
                close_iterator(pieces)

    def chat(
        self,
        messages: Iterable[ChatMessage],
        exchange: window.Exchange | None = None,
        *,
        urgent: bool | None = None,
    ) -> str:
        return "".join(self.stream_chat(messages, exchange, urgent=urgent))

    def server_gate(self) -> window.ServerGate | None:
        """The one-at-a-time gate of this provider's server, when it runs on our side."""
        if not self.enabled or not (self.name == "ollama" or self.is_local()):
            return None
        return window.gate_for(display_url(self.base_url) or self.name)

    def model_profile(self) -> ModelProfile:
        """The model's context length and image costs, asked of the server once."""
        if self._profile is None:
            self._profile = self._with_retries(self._profile_once)
        return self._profile

    def context_window(self) -> int | None:
        """The context a request may use: the model's, capped by the user's setting.

        None when neither is known (a cloud API, most OpenAI-compatible servers): then only
        the server's refusal of an over-long request makes duetml shrink it.
        """
        length = self.model_profile().context_length
        if length and self.max_context:
            return min(length, self.max_context)
        return length or self.max_context

    def list_models(self) -> list[ModelInfo]:
        return self._with_retries(self._list_models_once)

    def probe(self) -> None:
        """One request for the model list, without retries: whether the server answers now.
        Raises the same one-sentence LLMError as every other call."""
        try:
            self._list_models_once()
        except LLMError as exc:
            raise self._redacted(exc) from None
        except Exception as exc:  # noqa: BLE001 - every client error becomes one sentence
            raise self._give_up(exc, self._classify(exc, mid_stream=False), 0) from None

    def model_info(self) -> ModelInfo:
        """Whether the chosen model is available on the server and whether it accepts images."""
        return self._with_retries(self._model_info_once)

    def is_local(self) -> bool:
        """True when requests stay on this machine (loopback address or unix socket)."""
        return is_local_url(self.base_url)

    def describe(self) -> ProviderInfo:
        """Settings as they may be shown or logged: no credentials, only a masked key tail."""
        return {
            "provider": self.name,
            "model": self.model or None,
            "endpoint": display_url(self.base_url),
            "is_local": self.is_local(),
            "key": self._key.masked if self._key else None,
        }

    def __repr__(self) -> str:
        info = self.describe()
        return (
            f"{type(self).__name__}(model={info['model']!r}, endpoint={info['endpoint']!r}, "
            f"key={info['key']!r})"
        )

    __str__ = __repr__

    # --- shared helpers for subclasses -----------------------------------------------------

    def use_hint(self, spec: str) -> str:
        """The command that switches this agent to `spec`, for "what to do next" sentences."""
        return f"`duetml llm use {self.agent or 'passive'} {spec}`"

    def detail(self, text: object) -> str:
        """Server-supplied text made safe to show: one line, short, key masked, no final dot."""
        # Redacted before it is cut (a cut key would show its first part) and after control
        # characters are gone (they could split the key so the first pass misses it).
        raw = self._redact(str(text))
        whole = self._redact(clean_text(raw, max_chars=len(raw) + 1, one_line=True))
        return clean_text(whole, max_chars=MAX_DETAIL_CHARS, one_line=True).rstrip(". ")

    def timeout_failure(self, server: str, *, connect: bool, mid_stream: bool) -> Failure:
        if connect:
            return Failure(
                f"Could not connect to {server} within {self.timeout.connect:g} seconds: "
                "check that the server is running and reachable."
            )
        if mid_stream:
            return Failure(
                f"{server} stopped answering for more than {self.timeout.read:g} seconds in "
                "the middle of the answer: try again, or choose a smaller model."
            )
        return Failure(
            f"{server} did not answer within {self.timeout.read:g} seconds: try again, or "
            "choose a smaller model."
        )

    def dropped_failure(self, server: str, *, mid_stream: bool) -> Failure:
        # "The server at ..." inside a sentence: "The connection to the server at ...".
        server = server[:1].lower() + server[1:] if server.startswith("The ") else server
        if mid_stream:
            return Failure(
                f"The connection to {server} dropped in the middle of the answer: try again."
            )
        # Nothing reached the caller yet, so trying again cannot duplicate text.
        return Failure(
            f"The connection to {server} dropped before the answer started: try again.",
            retryable=True,
            broken=True,
        )

    def incomplete_failure(self, server: str) -> Failure:
        return Failure(f"{server} stopped before the answer was complete: try again.", broken=True)

    def malformed_failure(self, server: str, kind: str) -> Failure:
        return Failure(
            f"{server} sent an answer duetml could not read: check that the address points "
            f"at {kind}.",
            broken=True,
        )

    def refuse_other_servers(self, request: Any) -> None:
        """An httpx request hook: every request, redirects included (httpx runs the hook for
        each one before sending it), goes to the chosen server's scheme, host and port, or is
        not sent. A redirect elsewhere would carry the photos to a server nobody approved
        (a 307 repeats the body; httpx only drops the Authorization header)."""
        url = request.url  # httpx's own parse: the server it is about to connect to
        host = url.raw_host.decode("ascii").lower()
        host = f"[{host}]" if ":" in host else host
        port = url.port or DEFAULT_PORTS.get(url.scheme)
        if f"{url.scheme}://{host}:{port}" != endpoint_key(self.base_url):
            target = display_url(str(url).split("?")[0]) or "another address"
            said = (
                f"{self.server_name()} answered with a redirect to {target}, another server: "
                "duetml follows no redirect away from the server you chose, so nothing was "
                "sent there"
            )
            raise RedirectRefused(
                f"{said} (if you trust it, set that address with `duetml llm use "
                f"{self.agent or 'passive'} {self.name}:{self.model} --base-url ...`).",
                web=f"{said} (if you trust it, choose that address as the server).",
            )

    def server_name(self) -> str:
        """How sentences name the server ("Ollama at http://...", "The OpenAI API")."""
        return f"The server at {display_url(self.base_url)}"

    # --- internals -------------------------------------------------------------------------

    def _with_retries(self, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return operation()
            except LLMError as exc:
                raise self._redacted(exc) from None
            except Exception as exc:  # noqa: BLE001 - every client error becomes one sentence
                refused = _refusal_in(exc)
                if refused is not None:
                    raise self._redacted(refused) from None
                failure = self._classify(exc, mid_stream=False)
                delay = self._retry_delay(failure, attempt)
                if delay is None:
                    raise self._give_up(exc, failure, attempt) from None
                self._wait_before_retry(exc, delay, attempt)
                attempt += 1

    def _retry_delay(self, failure: Failure, attempt: int) -> float | None:
        if not failure.retryable or attempt >= self.max_retries:
            return None
        if failure.retry_after is not None:
            if failure.retry_after > MAX_RETRY_AFTER_SECONDS:
                return None
            return failure.retry_after
        return min(self.retry_backoff * 2.0**attempt, MAX_BACKOFF_SECONDS)

    def _wait_before_retry(self, exc: Exception, delay: float, attempt: int) -> None:
        # The exception's text may quote a server body, so only its type is logged.
        log.info(
            "%s: %s, retrying in %.1f s (retry %d of %d)",
            self.name,
            type(exc).__name__,
            delay,
            attempt + 1,
            self.max_retries,
        )
        time.sleep(delay)

    def _give_up(
        self, exc: Exception, failure: Failure, attempt: int, *, before_answer: bool = True
    ) -> LLMError:
        message = self._redact(failure.message)
        if failure.overflow:
            return ContextOverflowError(message, failure.limit)
        # INFO, not WARNING: the caller shows the same sentence to the user already.
        log.info(
            "%s failed after %d attempt(s) (%s): %s",
            self.name,
            attempt + 1,
            type(exc).__name__,
            message,
        )
        status = getattr(exc, "status_code", None)
        return RequestFailed(
            message,
            before_answer=before_answer,
            status=status if isinstance(status, int) and status > 0 else None,
            detail=self.detail(exc),
            broken=failure.broken,
        )

    def _redact(self, text: str) -> str:
        return self._key.redact(text) if self._key else text

    def _redacted(self, exc: LLMError) -> LLMError:
        return LLMError(self._redact(str(exc)))


# What a server names when it cannot take the parts of a message that carry photos
# (llama.cpp's: "can only concatenate str (not "list") to str").
NAMES_IMAGES = re.compile(r"image|vision|multimodal|multi-modal|content|\blist\b", re.IGNORECASE)


def _refused_photos(failure: Failure, exc: Exception, detail: str) -> bool:
    """Whether a failure before any text looks like a text-only server refusing photos: a
    broken answer, or a 4xx/5xx naming content or images."""
    if failure.broken:
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and status >= 400 and bool(NAMES_IMAGES.search(detail))


class RedirectRefused(LLMError):
    """The chosen server redirected a request to another server (scheme, host or port):
    raised from the HTTP client's request hook, before anything is sent there."""

    summary = "the server redirected elsewhere"


def _refusal_in(exc: BaseException) -> RedirectRefused | None:
    """The RedirectRefused a client wrapped (openai makes it an APIConnectionError's cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RedirectRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class ToolStreamingProvider(Provider):
    """A provider whose API streams text and tool calls from one request (Ollama, OpenAI):
    both hooks are that one stream, with or without tools."""

    @abstractmethod
    def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec] | None
    ) -> Iterator[str | ToolCall]:
        """One attempt: text pieces and whole tool calls, in order."""

    def _open_stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        for piece in self._stream(messages, None):
            if isinstance(piece, str):
                yield piece

    def _open_tool_stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> Iterator[str | ToolCall]:
        return self._stream(messages, tools)
