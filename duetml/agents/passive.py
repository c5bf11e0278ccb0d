"""The passive agent: answers when asked (chat, "about my data", "about my results").

It turns a question into one request: its instruction, the saved dialogue as turns, and a last
user turn holding the project state (fenced), the photos as contact sheets, and the question.
Only the last turn carries images, so a long dialogue does not multiply the request size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from duetml.agents import prompts
from duetml.agents.context import AgentContext, ContextBuilder, history_messages
from duetml.agents.conversation import Message
from duetml.agents.proposals import PROPOSAL_TOOL
from duetml.llm import ChatMessage, Provider, ToolCall, clean_text

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
        conversation: Sequence[Message],
        *,
        vision: bool,
        tools: bool = False,
    ) -> tuple[list[ChatMessage], AgentContext]:
        """The request; `tools` says whether proposals go by tool call or fenced JSON."""
        context = self.builder.build(about, conversation, vision=vision)
        question = clean_text(question, max_chars=MAX_QUESTION_CHARS).strip()
        how = prompts.PROPOSALS_BY_TOOL if tools else prompts.PROPOSALS_BY_JSON
        last = [context.text, prompts.ASK_INSTRUCTIONS[about], how]
        if question:
            last.append(f"The user's message:\n{question}")
        messages = [ChatMessage("system", prompts.PASSIVE_SYSTEM)]
        messages += history_messages(conversation, self.builder.budget)
        messages.append(ChatMessage("user", "\n\n".join(last), images=context.images))
        return messages, context

    def stream(
        self, messages: list[ChatMessage], tool_calls: list[ToolCall] | None = None
    ) -> Iterator[str]:
        """The reply's text; with `tool_calls`, the proposal tool is offered and its calls
        are collected there."""
        if tool_calls is None:
            return self.provider.stream_chat(messages)
        return self.provider.stream_chat(messages, tools=[PROPOSAL_TOOL], tool_calls=tool_calls)
