"""The "none" provider: both agents switched off, and nothing ever leaves the machine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

from duetml.errors import LLMError
from duetml.llm.base import Failure, Provider
from duetml.llm.types import ChatMessage, ModelInfo


class NoneProvider(Provider):
    name: ClassVar[str] = "none"
    needs_key: ClassVar[bool] = False
    key_env_var: ClassVar[str | None] = None
    default_model: ClassVar[str | None] = None
    enabled: ClassVar[bool] = False

    def _resolve_base_url(self, base_url: str | None, env: Mapping[str, str]) -> None:
        return None

    def is_local(self) -> bool:
        return True  # nothing is sent anywhere

    def _open_stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        # A generator like every other provider's, so the error comes on the first piece.
        yield from ()
        raise LLMError(
            "The assistant is switched off for this agent: choose a provider with "
            f"{self.use_hint('ollama:qwen2.5vl')}."
        )

    def _list_models_once(self) -> list[ModelInfo]:
        return []

    def _model_info_once(self) -> ModelInfo:
        return ModelInfo(name="none", installed=False, vision=None)

    def _classify(self, exc: Exception, *, mid_stream: bool) -> Failure:
        return Failure("The assistant is switched off: choose a provider with `duetml llm use`.")
