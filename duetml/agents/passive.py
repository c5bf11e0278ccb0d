"""The passive agent: answers when asked (chat, "about my data", "about my results").

It turns a question into one request: its instruction, the saved dialogue as turns, and a last
user turn holding the project state (fenced), the photos as contact sheets, and the question.
Only the last turn carries images, so a long dialogue does not multiply the request size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from duetml.agents import prompts
from duetml.agents.context import AgentContext, ContextBuilder, history_messages
from duetml.llm import ChatMessage, Provider, clean_text

ASKS = ("chat", "data", "results")
KIND_OF_ASK = {"chat": "chat", "data": "ask_data", "results": "ask_results"}
MAX_QUESTION_CHARS = 4_000


class PassiveAgent:
    def __init__(self, provider: Provider, builder: ContextBuilder) -> None:
        self.provider = provider
        self.builder = builder

    def request(
        self,
        question: str,
        about: str,
        conversation: Sequence[dict[str, Any]],
        *,
        vision: bool,
    ) -> tuple[list[ChatMessage], AgentContext]:
        context = self.builder.build(about, conversation, vision=vision)
        question = clean_text(question, max_chars=MAX_QUESTION_CHARS).strip()
        last = [context.text, prompts.ASK_INSTRUCTIONS[about]]
        if question:
            last.append(f"The user's message:\n{question}")
        messages = [ChatMessage("system", prompts.PASSIVE_SYSTEM)]
        messages += history_messages(conversation, self.builder.budget)
        messages.append(ChatMessage("user", "\n\n".join(last), images=context.images))
        return messages, context

    def stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        return self.provider.stream_chat(messages)
