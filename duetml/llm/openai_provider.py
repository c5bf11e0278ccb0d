"""OpenAI, and any server that speaks its chat-completions API (LM Studio, vLLM, llama.cpp).

Uses the official `openai` client, imported on first use. Its own retries are switched off
(`max_retries=0`) so that the shared driver in `base.py` bounds them, honours Retry-After with
a cap, and never retries once text has reached the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from duetml.errors import LLMError
from duetml.llm import window
from duetml.llm.base import (
    ConnectionDropped,
    Failure,
    IncompleteAnswer,
    ModelProfile,
    ToolStreamingProvider,
    parse_retry_after,
)
from duetml.llm.privacy import display_url
from duetml.llm.types import ChatMessage, ModelInfo, ToolCall, ToolSpec, parse_tool_arguments
from duetml.llm.vision import guess_vision

if TYPE_CHECKING:
    import openai

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers ignore the key but the client insists on one; this is obviously not a secret.
LOCAL_PLACEHOLDER_KEY = "no-key-needed-for-local-server"


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause is not None else ""


def _error_detail(exc: Any) -> str:
    """The server's own error message from an OpenAI-style body, else the status text."""
    body = getattr(exc, "body", None)
    if isinstance(body, str) and body:  # the client unwraps {"error": "..."} (LM Studio)
        return body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    response = getattr(exc, "response", None)
    return getattr(response, "reason_phrase", "") or "no details"


def _error_code(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return str(inner.get("code") or inner.get("type") or "")
    return ""


class OpenAIProvider(ToolStreamingProvider):
    name: ClassVar[str] = "openai"
    # Needed for api.openai.com and other remote endpoints; a local server works without one.
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"
    default_model: ClassVar[str | None] = "gpt-4o"

    def __init__(self, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._client_instance: openai.OpenAI | None = None

    def _resolve_base_url(self, base_url: str | None, env: Mapping[str, str]) -> str:
        return (base_url or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")

    def server_name(self) -> str:
        if self.base_url == DEFAULT_BASE_URL:
            return "The OpenAI API"
        return f"The server at {display_url(self.base_url)}"

    # --- the client ------------------------------------------------------------------------

    def _client(self) -> openai.OpenAI:
        if self._client_instance is None:
            if self._key is None and not self.is_local():
                raise LLMError(
                    f"No API key is set for {display_url(self.base_url)}: set OPENAI_API_KEY, "
                    f"or keep your photos on this machine with {self.use_hint('ollama:qwen2.5vl')}."
                )
            import openai

            # Every request (redirects too) goes to the chosen server or nowhere; a proxy
            # from the environment must never see traffic meant for this machine.
            http_client = openai.DefaultHttpx2Client(
                trust_env=not self.is_local(),
                event_hooks={"request": [self.refuse_other_servers], "response": []},
            )
            self._client_instance = openai.OpenAI(
                api_key=self._key.reveal() if self._key else LOCAL_PLACEHOLDER_KEY,
                base_url=self.base_url,
                timeout=openai.Timeout(self.timeout.read, connect=self.timeout.connect),
                max_retries=0,
                http_client=http_client,
            )
        return self._client_instance

    @staticmethod
    def _encode(message: ChatMessage) -> dict[str, Any]:
        text = message.text_with_labels()
        if not message.images:
            return {"role": message.role, "content": text}
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        parts.extend(
            {"type": "image_url", "image_url": {"url": image.data_url()}}
            for image in message.images
        )
        return {"role": message.role, "content": parts}

    # --- hooks -----------------------------------------------------------------------------

    def supports_tools(self) -> bool:
        # The chat-completions API has tools; a local server without them answers in text.
        return True

    def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec] | None
    ) -> Iterator[str | ToolCall]:
        import openai

        client = self._client()
        # The client's TypedDict message types add nothing over `_encode`'s tested shape.
        payload: Any = [self._encode(m) for m in messages]
        extra: Any = {"tools": [t.as_openai() for t in tools]} if tools else {}
        stream = client.chat.completions.create(
            model=self.model, messages=payload, stream=True, **extra
        )
        finished = False
        anything = False
        # Tool calls arrive in fragments keyed by index: the name first, the JSON arguments
        # in pieces; they are whole only when the stream finishes.
        partial: dict[int, list[str]] = {}
        try:
            for chunk in stream:
                for choice in chunk.choices or ():
                    if choice.index != 0:
                        continue
                    delta = choice.delta
                    text = delta.content if delta is not None else None
                    anything = True
                    if text:
                        yield text
                    for call in (delta.tool_calls if delta is not None else None) or ():
                        name_args = partial.setdefault(call.index, ["", ""])
                        if call.function is not None:
                            name_args[0] += call.function.name or ""
                            name_args[1] += call.function.arguments or ""
                    if choice.finish_reason:
                        finished = True
        except openai.APITimeoutError:
            raise
        except openai.APIConnectionError as exc:
            # Same exception type as "connection refused"; here the response had started.
            stream.close()  # first: the dropped connection leaves the pool
            if not anything:
                self._ask_why_unstreamed(client, payload, extra)
            raise ConnectionDropped() from exc
        finally:
            stream.close()
        # Every OpenAI-compatible server sends a finish_reason; a stream without one was cut
        # off by a proxy or a crash, even if the HTTP body ended cleanly.
        if not finished:
            if not anything:
                self._ask_why_unstreamed(client, payload, extra)
            raise IncompleteAnswer()
        for _, (name, arguments) in sorted(partial.items()):
            yield ToolCall(name, parse_tool_arguments(arguments))

    def _ask_why_unstreamed(self, client: openai.OpenAI, payload: Any, extra: Any) -> None:
        """After a stream that ended or dropped before its first event: llama.cpp's server
        does that when it fails before the first token (the request is longer than its
        context, or has photos a text-only model cannot take). Not streamed, the same request
        gets the server's own error (400 context_length_exceeded, 500 naming the content),
        which the caller can act on (shrink, or send the description): raised from here. One
        token asked, so a server that would answer costs little."""
        import openai

        for attempt in range(2):
            try:
                client.chat.completions.create(
                    model=self.model, messages=payload, stream=False, max_tokens=1, **extra
                )
                return
            except openai.APIConnectionError:
                # A keep-alive connection the server closed after the broken stream: once
                # more, on a fresh one; then the caller's own error stands.
                if attempt:
                    return

    def _list_models_once(self) -> list[ModelInfo]:
        page = self._client().models.list()
        names = sorted({model.id for model in page.data})
        return [ModelInfo(name=name, installed=True, vision=guess_vision(name)) for name in names]

    def _model_info_once(self) -> ModelInfo:
        names = {model.name for model in self._list_models_once()}
        # Ollama's OpenAI-compatible endpoint lists "llava:latest" for a model asked as "llava".
        installed = self.model in names or f"{self.model}:latest" in names
        return ModelInfo(self.model, installed=installed, vision=guess_vision(self.model))

    def _profile_once(self) -> ModelProfile:
        """vLLM lists each model's `max_model_len`; other servers say nothing until refused."""
        family = window.family_for(self.model)
        if not self.is_local():
            return ModelProfile(None, family)
        try:
            models = self._client().models.list().data
        except Exception:  # noqa: BLE001 - a server without /models still answers chats
            return ModelProfile(None, family)
        for model in models:
            if model.id == self.model:
                length = (model.model_extra or {}).get("max_model_len")
                if isinstance(length, int) and length > 0:
                    return ModelProfile(length, family)
        return ModelProfile(None, family)

    def _classify(self, exc: Exception, *, mid_stream: bool) -> Failure:
        import openai

        server = self.server_name()
        url = display_url(self.base_url)
        if isinstance(exc, IncompleteAnswer):
            return self.incomplete_failure(server)
        if isinstance(exc, openai.APITimeoutError):
            connect = _cause_name(exc) in ("ConnectTimeout", "PoolTimeout")
            return self.timeout_failure(server, connect=connect, mid_stream=mid_stream)
        if isinstance(exc, ConnectionDropped):
            return self.dropped_failure(server, mid_stream=mid_stream)
        if isinstance(exc, openai.APIConnectionError):
            if _cause_name(exc) != "ConnectError":
                return self.dropped_failure(server, mid_stream=mid_stream)
            if self.is_local():
                return Failure(
                    f"No server is answering at {url}: start your OpenAI-compatible server "
                    "(LM Studio, vLLM, llama.cpp), or choose another provider with "
                    f"{self.use_hint('ollama:qwen2.5vl')}."
                )
            return Failure(
                f"Could not reach {url}: check your internet connection and OPENAI_BASE_URL, "
                f"or work offline with {self.use_hint('ollama:qwen2.5vl')}."
            )
        if isinstance(exc, openai.APIStatusError):
            return self._classify_status(exc, server)
        if isinstance(exc, openai.APIResponseValidationError):
            return self.malformed_failure(server, "an OpenAI-compatible API")
        if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
            return Failure(
                f"{server} reported an error while answering ({self.detail(_error_detail(exc))})"
                ": try again."
            )
        if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
            return self.malformed_failure(server, "an OpenAI-compatible API")
        return Failure(f"{server} failed unexpectedly ({type(exc).__name__}): try again.")

    def _classify_status(self, exc: openai.APIStatusError, server: str) -> Failure:
        status = exc.status_code
        detail = self.detail(_error_detail(exc))
        retry_after = parse_retry_after(exc.response.headers)
        if status == 401:
            todo = (
                "check OPENAI_API_KEY"
                if self._key
                else "set OPENAI_API_KEY to the key this server expects"
            )
            return Failure(f"{server} rejected the API key (HTTP 401): {todo}.")
        if status == 403:
            return Failure(
                f"{server} refused access (HTTP 403): check that the key in OPENAI_API_KEY may "
                f"use the model '{self.model}'."
            )
        if status == 404:
            return Failure(
                f"{server} does not know the model '{self.model}' (HTTP 404): check the model "
                f"name and that the base URL ends in /v1, or choose another with "
                f"{self.use_hint('openai:gpt-4o')}."
            )
        if status == 429 and _error_code(exc) == "insufficient_quota":
            return Failure(
                f"{server} says the account has no quota left (HTTP 429): add credit to the "
                f"account, or choose the local provider with {self.use_hint('ollama:qwen2.5vl')}."
            )
        if status in (408, 429) or status >= 500:
            wait = f", asking to wait {retry_after:g} seconds" if retry_after else ""
            reason = "is rate-limiting requests" if status == 429 else "could not answer"
            return Failure(
                f"{server} {reason} (HTTP {status}: {detail}){wait}: try again in a minute.",
                retryable=True,
                retry_after=retry_after,
            )
        if status in (400, 413):
            body = exc.body if isinstance(exc.body, Mapping) else None
            overflow, limit = window.overflow_limit(_error_detail(exc), body)
            if overflow:
                return Failure(
                    f"{server} refused the request as longer than the model's context "
                    f"({detail}): load the model with a larger context, or choose one with a "
                    "larger context.",
                    overflow=True,
                    limit=limit,
                )
        return Failure(
            f"{server} refused the request (HTTP {status}: {detail}): check the model name "
            "and whether it accepts images."
        )
