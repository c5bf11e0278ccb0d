"""A streamed reply is capped (issue 17, item 7): a server that streams without end (49 MB
reached the page and the terminal) is cut at MAX_REPLY_CHARS, with a sentence, against both
real clients on loopback servers."""

from __future__ import annotations

import pytest
from llm_fakes import FakeOllamaServer, FakeOpenAIServer

from duetml.errors import LLMError
from duetml.llm import ChatMessage
from duetml.llm.base import MAX_REPLY_CHARS
from duetml.llm.ollama_provider import OllamaProvider
from duetml.llm.openai_provider import OpenAIProvider


@pytest.mark.parametrize("provider_name", ["openai", "ollama"])
def test_an_endless_reply_is_cut_with_a_sentence(provider_name: str) -> None:
    chunk = "lorem ipsum " * 400  # 4.8 KB a piece
    pieces = [chunk] * (3 * MAX_REPLY_CHARS // len(chunk))
    with (
        FakeOpenAIServer(models=["m"])
        if provider_name == "openai"
        else FakeOllamaServer(models={"m": ["completion"]})
    ) as server:
        server.queue_reply("", chunks=pieces)
        provider = (
            OpenAIProvider("m", base_url=server.url)
            if provider_name == "openai"
            else OllamaProvider("m", base_url=server.url)
        )
        received: list[str] = []
        with pytest.raises(LLMError, match="longer than 60,000 characters"):
            for piece in provider.stream_chat([ChatMessage("user", "talk")]):
                received.append(piece)
    assert len("".join(received)) == MAX_REPLY_CHARS
