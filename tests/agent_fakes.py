"""A provider with queued replies, for the agent tests (fixtures are in conftest.py).

provider = FakeProvider()
provider.enqueue("Try broader categories.")
session = AgentSession(project, passive=provider, proactive=FakeProvider())
"".join(session.ask_stream("hello"))
provider.history[-1]        # the list of ChatMessage the agent sent
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Self

from duetml.llm import ChatMessage, ModelInfo, Provider
from duetml.llm.base import Failure


class FakeProvider(Provider):
    """Returns queued replies (streamed word by word) and records every request in `history`.

    `vision=False` makes it a text-only model; `base_url` decides whether it counts as local;
    `gate` (a threading.Event) holds each reply until it is set, for overlap tests.
    """

    name: ClassVar[str] = "fake"
    default_model: ClassVar[str | None] = "fake-vision"

    def __init__(
        self,
        model: str | None = None,
        *,
        vision: bool | None = True,
        base_url: str = "http://127.0.0.1:9",
        default_reply: str = "ok",
        gate: threading.Event | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, base_url=base_url, max_retries=0, **kwargs)
        self.vision = vision
        self.default_reply = default_reply
        self.gate = gate
        self.replies: deque[str | Exception] = deque()
        self.history: list[list[ChatMessage]] = []
        self.model_info_calls = 0
        self._lock = threading.Lock()

    def enqueue(self, *replies: str | Exception) -> Self:
        self.replies.extend(replies)
        return self

    @property
    def calls(self) -> int:
        return len(self.history)

    def _resolve_base_url(self, base_url: str | None, env: Mapping[str, str]) -> str | None:
        return base_url

    def _open_stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        with self._lock:
            self.history.append(list(messages))
            reply = self.replies.popleft() if self.replies else self.default_reply
        if self.gate is not None:
            self.gate.wait(10)
        if isinstance(reply, Exception):
            raise reply
        words = reply.split(" ")
        for index, word in enumerate(words):
            yield word if index == 0 else " " + word

    def _list_models_once(self) -> list[ModelInfo]:
        return [ModelInfo(self.model, installed=True, vision=self.vision)]

    def _model_info_once(self) -> ModelInfo:
        self.model_info_calls += 1
        return ModelInfo(self.model, installed=True, vision=self.vision)

    def _classify(self, exc: Exception, *, mid_stream: bool) -> Failure:
        return Failure(f"The fake model failed ({exc}): try again.")


def all_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.text_with_labels() for m in messages)
