"""One-time notices for the user about the agents' models and servers.

"This model cannot see images", "the server cut the request", "the model's context is small":
each is said once per project (remembered in `.duetml/agents.json`) unless it is news every
time, queued on the session and taken by the CLI or the page with `pop_notices()`.
`Notices` is a base of `AgentSession`; it declares the session state it uses.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from duetml.agents import choice, fitting
from duetml.llm import Provider, display_url
from duetml.llm import window as llm_window

if TYPE_CHECKING:
    from duetml.agents.conversation import ConversationStore
    from duetml.project import Project

# Agent state key (`.duetml/agents.json`): the notices already given.
CONTEXT_NOTIFIED_KEY = "context_notified"


class Notices:
    """The session's queue of notices for the user, and the memory of those already given."""

    project: Project
    store: ConversationStore
    _lock: threading.Lock
    _notices: list[str]

    def pop_notices(self) -> list[str]:
        """One-time notices for the user (e.g. "this model cannot see images"), then cleared."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def _tell_text_only(self, agent: str, provider: Provider) -> None:
        spec = f"{provider.name}:{provider.model}"
        key = f"{agent}={spec}"
        told: list[bool] = []

        def remember(state: dict[str, Any]) -> None:
            seen = list(state.get("text_only_notified") or [])
            told.append(key in seen)
            if key not in seen:
                state["text_only_notified"] = [*seen, key]

        self.store.update_state(remember)
        if told and told[0]:
            return
        notice = (
            f"The {agent} agent's model {spec} does not accept images, so it gets a text "
            "description of your photos instead of the photos themselves; for better advice "
            f"choose a vision model, e.g. `duetml llm use {agent} {choice.LOCAL_SPEC}`."
        )
        with self._lock:
            self._notices.append(notice)
        self.project.log.record("agent_text_only", agent=agent, model=spec)

    def _server(self, provider: Provider) -> str:
        kind = "Ollama" if provider.name == "ollama" else "The server"
        return f"{kind} at {display_url(provider.base_url)}"

    def _tell_cut(
        self,
        agent: str,
        provider: Provider,
        fitted: fitting.Fitted,
        exchange: llm_window.Exchange,
    ) -> None:
        kept = exchange.prompt_eval_count or 0
        asked = exchange.num_ctx or fitted.size.tokens + llm_window.reply_room(fitted.window)
        self._tell_once(
            f"cut {display_url(provider.base_url)} {provider.model} {kept}",
            f"{self._server(provider)} kept only {kept:,} tokens of the {agent} agent's request "
            f"(estimated at {fitted.size.tokens:,}) and dropped its start, the assistant's "
            f"instructions, although duetml asked for a context of {asked:,}: set "
            f"OLLAMA_CONTEXT_LENGTH={asked} where Ollama runs (or let the proxy in front of it "
            f"pass `options.num_ctx`); until then duetml sends requests that fit {kept:,} tokens.",
            always=True,
        )

    def _tell_overflow(self, agent: str, provider: Provider, limit: int | None, asked: int) -> None:
        size = f" ({limit:,} tokens)" if limit else ""
        if limit and limit >= asked:  # the server counts more than duetml estimated
            asked = 2 * limit
        self._tell_once(
            f"overflow {display_url(provider.base_url)} {provider.model} {limit}",
            f"{self._server(provider)} refused the {agent} agent's request as longer than the "
            f"model's context{size}, so duetml sent a smaller one: for the full request, load "
            f"the model with a larger context, {asked:,} tokens or more (`-c` for llama.cpp, the "
            "context length in LM Studio, `--max-model-len` for vLLM).",
            always=True,
        )

    def _tell_once(self, key: str, notice: str, *, always: bool = False) -> None:
        """Add a notice for the user, once per project for `key` unless `always`."""
        told: list[bool] = []

        def remember(state: dict[str, Any]) -> None:
            seen = list(state.get(CONTEXT_NOTIFIED_KEY) or [])
            told.append(key in seen)
            if key not in seen:
                state[CONTEXT_NOTIFIED_KEY] = [*seen, key][-50:]

        if not always:
            self.store.update_state(remember)
            if told and told[0]:
                return
        with self._lock:
            self._notices.append(notice)
        self.project.log.record("agent_context_notice", notice=notice)
