"""`AgentSession`: both agents of one open project, for the CLI and the web UI alike.

    session = AgentSession(Project.open("myproject"))
    for piece in session.ask_stream("Is `plant` a good category?"):
        print(piece, end="")
    advice = session.proactive_pass()          # None when there is nothing new to say

The two agents use separate providers (as in the paper, two independent model sessions), may
run from different threads at the same time, and share the saved conversation. Every agent
operation is also written to the project's interaction log as an `agent_*` event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from duetml.agents import choice, fitting, prompts, text_only
from duetml.agents.context import DEFAULT_BUDGET, AgentContext, Budget, ContextBuilder
from duetml.agents.conversation import ConversationStore, Message
from duetml.agents.notices import CONTEXT_NOTIFIED_KEY
from duetml.agents.passive import ASKS, KIND_OF_ASK, PassiveAgent
from duetml.agents.proposals import PROPOSAL_TOOL
from duetml.agents.providers import AgentProviders
from duetml.errors import DuetmlError, NotFoundError
from duetml.llm import ChatMessage, Provider, ToolCall, clean_text, display_url
from duetml.llm import window as llm_window
from duetml.llm.base import ContextOverflowError, RequestFailed
from duetml.settings import Settings

if TYPE_CHECKING:
    from duetml.project import Project

MAX_GOAL_CHARS = 500
# The proactive agent keeps quiet while a reply is written and this long after (the user is
# reading it), and waits this long for an answer to the opening question before it speaks.
QUIET_AFTER_REPLY = 3.0
GREETING_PATIENCE = 120.0
# Shown between a reply written without its instructions (the server cut the request) and the
# retry; only the retry is saved.
RETRY_SEPARATOR = (
    "\n\n(The model server cut the start of that request, so the answer above was written "
    "without the assistant's instructions. Asking again with a smaller request:)\n\n"
)
# Agent state keys (`.duetml/agents.json`).
LAST_REQUEST_KEY = "last_request"
LEARNED_KEY = "learned_windows"

Build = Callable[[ContextBuilder], tuple[list[ChatMessage], Any]]


class AgentSession(AgentProviders):
    """Both agents of one open project; used by `duetml chat/ask/advise` and the web UI.

    Its providers, their readiness and consent come from `AgentProviders`, the notices for the
    user from `Notices`; the proactive agent's look is `ProactiveAgent.look`.
    """

    GREETING = prompts.GREETING

    def __init__(
        self,
        project: Project,
        passive: Provider | None = None,
        proactive: Provider | None = None,
        *,
        budget: Budget = DEFAULT_BUDGET,
    ) -> None:
        self.project = project
        self.store = ConversationStore(project.state_dir)
        self.builder = ContextBuilder(project, budget)
        self._given = {"passive": passive, "proactive": proactive}
        self._lock = threading.Lock()
        # Held by a running proactive pass; a second pass finds it taken and is skipped. Kept
        # on the session, so refresh() (new providers) cannot open a window for an overlap.
        self._proactive_running = threading.Lock()
        self._notices: list[str] = []
        # Replies being written, and when the last one ended: the proactive agent waits.
        self._replies_running = 0
        self._reply_ended: float | None = None
        # Why unprompted looks must wait, from outside (a user study between tasks), or None.
        self.hold: Callable[[], str | None] | None = None
        self._setup_providers()
        self.store.ensure_greeting(self.GREETING)

    # --- the conversation ------------------------------------------------------------------

    def conversation(self) -> list[Message]:
        """Saved messages, oldest first; the greeting is the first one of a new project.

        Proposals carry their number in the conversation (`/apply 1`), and whether the user
        applied them.
        """
        messages = self.store.messages()
        applied = self.store.state().get("proposals_applied") or {}
        number = 0
        for message in messages:
            for proposal in message.get("proposals") or ():
                number += 1
                proposal["number"] = number
                proposal["applied"] = proposal.get("id") in applied
        return messages

    # --- proposals -------------------------------------------------------------------------

    def proposals(self) -> list[dict[str, Any]]:
        """Every proposal of the conversation, numbered from 1, oldest first."""
        return [p for m in self.conversation() for p in m.get("proposals") or ()]

    def apply_proposal(self, which: str | int) -> str:
        """Apply a proposal (by id or number) as one undoable operation, on the user's click.

        Checked against the project as it is now; applying the same proposal twice is refused
        (Undo reverts it). Returns the sentence to show.
        """
        from duetml.agents import proposals

        found = [
            p
            for p in self.proposals()
            if p.get("id") == which or str(p.get("number")) == str(which).lstrip("#")
        ]
        if not found:
            raise NotFoundError("There is no such proposal: reload the conversation.")
        proposal = found[-1]
        if proposal["applied"]:
            raise DuetmlError("That change was applied already; Undo reverts it.")
        result = proposals.apply(self.project, proposal)

        def remember(state: dict[str, Any]) -> None:
            applied = dict(state.get("proposals_applied") or {})
            applied[proposal["id"]] = {"ts": time.time(), "result": result}
            state["proposals_applied"] = applied

        self.store.update_state(remember)
        return result

    def _with_proposals(
        self, reply: str, calls: list[ToolCall], context: AgentContext
    ) -> tuple[str, dict[str, Any]]:
        """The reply to save and show, and its validated proposals as extra message fields."""
        from duetml.agents import proposals

        text, valid, problems = proposals.from_reply(self.project, reply, calls, context.photos)
        if problems:
            self.project.log.record("agent_proposal_refused", problems=problems[:5])
        if not valid:
            return text, {}
        if not text:
            text = "I suggest a change you can apply with one click:"
        return text, {"proposals": [p.stored() for p in valid]}

    # --- the passive agent -----------------------------------------------------------------

    def ask_stream(self, message: str, about: str = "chat") -> Generator[str, None, None]:
        """Stream the passive agent's reply; both turns are saved when the stream ends.

        Argument, settings and consent problems are raised at once; LLM failures while
        iterating, as `LLMError` with one sentence (the turn is then saved with an error reply).
        """
        if about not in ASKS:
            raise DuetmlError(f"Ask about one of {', '.join(ASKS)}, not '{str(about)[:20]}'.")
        message = message if isinstance(message, str) else ""
        if about == "chat" and not message.strip():
            raise DuetmlError("Write a message for the assistant first.")
        self._check_ready("passive")
        return self._ask(message, about)

    def _ask(self, message: str, about: str) -> Generator[str, None, None]:
        kind = KIND_OF_ASK[about]
        provider = self.passive_provider
        user_text = clean_text(message, max_chars=8_000).strip()
        pieces: list[str] = []
        sent: dict[str, Any] = {}
        with self._lock:
            self._replies_running += 1
        try:
            conversation = self.conversation()
            self._capture_goal(user_text, about, conversation)
            self._sees_images("passive")  # asked before the request: it may tell the user
            tools = self._uses_tools("passive")

            def build(builder: ContextBuilder) -> tuple[list[ChatMessage], Any]:
                agent = PassiveAgent(provider, builder)
                # Asked again at each build: a model found text-only gets no photos on retry.
                vision = self._sees_images("passive")
                return agent.request(user_text, about, conversation, vision=vision, tools=tools)

            replies = self._send(
                "passive",
                build,
                sent,
                separator=RETRY_SEPARATOR,
                on_restart=pieces.clear,
                tools=tools,
            )
            for piece in replies:
                pieces.append(piece)
                yield piece
        except DuetmlError as exc:
            self._save_broken_turn(kind, user_text, pieces, str(exc))
            self._log_ask(about, provider, ok=False, error=str(exc))
            raise
        except GeneratorExit:  # the reader stopped early (closed page, Ctrl-C)
            self._save_broken_turn(kind, user_text, pieces, None)
            self._log_ask(about, provider, ok=False, error="interrupted")
            raise
        finally:
            with self._lock:
                self._replies_running -= 1
                self._reply_ended = time.monotonic()
        context = sent["extra"]
        reply, extra = self._with_proposals("".join(pieces).strip(), sent["calls"], context)
        self.store.append(("user", kind, user_text), ("assistant", kind, reply, extra))
        self._log_ask(
            about,
            provider,
            ok=True,
            images=len(context.images),
            image_bytes=context.image_bytes,
            reply_chars=len(reply),
            tokens=sent["size"].tokens,
            proposals=len(extra.get("proposals") or ()),  # shown as buttons (study reports)
        )

    # --- fitting requests into the model's context ------------------------------------------

    def _send(
        self,
        agent: str,
        build: Build,
        sent: dict[str, Any],
        *,
        separator: str | None,
        on_restart: Callable[[], None],
        tools: bool = False,
    ) -> Iterator[str]:
        """Fit the request, send it, and retry once smaller if the server cut or refused it.

        `sent` gets the request's size and what `build` returned with it (for the log), and
        the proposal tool calls the model made (`calls`; offered only with `tools`).
        """
        calls: list[ToolCall] = []
        sent["calls"] = calls
        offer: dict[str, Any] = {"tools": [PROPOSAL_TOOL], "tool_calls": calls} if tools else {}
        provider = self._provider(agent)
        urgent = agent == "passive"
        window: int | None = None
        shrunk = photos_dropped = False  # each fix is tried once
        while True:
            calls.clear()
            fitted = self._fit(agent, provider, build, window=window)
            exchange = llm_window.Exchange()
            try:
                yield from provider.stream_chat(fitted.messages, exchange, urgent=urgent, **offer)
            except ContextOverflowError as exc:
                if shrunk:
                    raise
                # Nothing reached the reader yet: the server refused before answering.
                asked = fitted.size.tokens + llm_window.reply_room(fitted.window)
                window = min(exc.limit or asked // 2, asked * 3 // 4)
                self._tell_overflow(agent, provider, exc.limit, asked)
                self._learn_window(provider, window)
                shrunk = True
                continue
            except RequestFailed as exc:
                # A model duetml did not know to be text-only, sent photos, broke before its
                # first word: ask once more with their description instead, and remember.
                images = any(m.images for m in fitted.messages)
                if photos_dropped or not (images and text_only.refuses_images(exc)):
                    raise
                self._learn_text_only(agent, provider)
                photos_dropped = True
                continue
            if shrunk or not exchange.cut or exchange.prompt_eval_count is None:
                self._remember_request(agent, provider, fitted, exchange)
                sent.update(extra=fitted.extra, size=fitted.size)
                return
            window = exchange.prompt_eval_count
            self._tell_cut(agent, provider, fitted, exchange)
            if separator:
                yield separator
            on_restart()
            self._learn_window(provider, window)
            shrunk = True

    def _fit(
        self, agent: str, provider: Provider, build: Build, window: int | None = None
    ) -> fitting.Fitted:
        """The request within `window`, else within the model's, the user's or a learned one."""
        learned = self._learned_window(provider)
        limits = [n for n in (self._cap, learned) if n]
        provider.max_context = min(limits) if limits else None
        profile = provider.model_profile()
        retry = window is not None
        if window is None:
            window = provider.context_window()
        spec = f"{provider.name}:{provider.model}"
        fitted = fitting.fit(
            build, self.builder, profile.family, window, who=f"The {agent} agent's model {spec}"
        )
        if fitted.shrunk and window is not None and not retry:  # a retry says so itself
            if self._cap == window:
                why = f"your setting [agents] {llm_window.CAP_SETTING} is small ({window:,} tokens)"
                todo = "raise that setting or choose a model with a larger context"
            elif learned == window:
                why = f"{self._server(provider)} keeps only {window:,} tokens"
                todo = "let the server use the context duetml asks for"
            else:
                why = f"your model's context is small ({spec}: {window:,} tokens)"
                todo = "choose a model with a larger context"
            who = "the assistant" if agent == "passive" else "the proactive agent"
            key = f"shrunk {agent} {spec} {window}"
            if learned == window:
                key = f"learned {self._window_key(provider)} {window}"
            self._tell_once(
                key,
                f"{why[0].upper()}{why[1:]}: {who} sees "
                f"{fitted.description(self.builder.budget)}; for the full picture, {todo}.",
            )
        return fitted

    @staticmethod
    def _window_key(provider: Provider) -> str:
        return f"{provider.name} {display_url(provider.base_url)} {provider.model}"

    def _learned_window(self, provider: Provider) -> int | None:
        """What a server was seen to keep (a cut prompt) within the last hour, if anything."""
        learned = (self.store.state().get(LEARNED_KEY) or {}).get(self._window_key(provider))
        if not isinstance(learned, dict):
            return None
        age = time.time() - float(learned.get("ts") or 0)
        tokens = learned.get("tokens")
        if age > llm_window.LEARNED_WINDOW_SECONDS or not isinstance(tokens, int):
            return None
        return tokens

    def _learn_window(self, provider: Provider, tokens: int) -> None:
        key = self._window_key(provider)

        def change(state: dict[str, Any]) -> None:
            learned = dict(state.get(LEARNED_KEY) or {})
            learned[key] = {"tokens": int(tokens), "ts": time.time()}
            state[LEARNED_KEY] = learned
            # The notice about the cut already said that requests get smaller.
            told = list(state.get(CONTEXT_NOTIFIED_KEY) or [])
            state[CONTEXT_NOTIFIED_KEY] = [*told, f"learned {key} {int(tokens)}"][-50:]

        self.store.update_state(change)

    def _remember_request(
        self,
        agent: str,
        provider: Provider,
        fitted: fitting.Fitted,
        exchange: llm_window.Exchange,
    ) -> None:
        """The last request's size, for `duetml llm status`."""
        size = fitted.size
        record = {
            "model": f"{provider.name}:{provider.model}",
            "tokens": size.tokens,
            "text_tokens": size.text_tokens,
            "image_tokens": size.image_tokens,
            "images": size.images,
            "full_tokens": fitted.full_size.tokens,
            "full_images": fitted.full_size.images,
            "num_ctx": exchange.num_ctx,
            "window": fitted.window,
            "prompt_eval_count": exchange.prompt_eval_count,
            "fitted": not exchange.cut,
            "shrunk": fitted.description(self.builder.budget) if fitted.shrunk else None,
            "ts": time.time(),
        }

        def change(state: dict[str, Any]) -> None:
            last = dict(state.get(LAST_REQUEST_KEY) or {})
            last[agent] = record
            state[LAST_REQUEST_KEY] = last

        self.store.update_state(change)

    def _save_broken_turn(self, kind: str, text: str, pieces: list[str], error: str | None) -> None:
        entries = [("user", kind, text)]
        if pieces:
            entries.append(("assistant", kind, "".join(pieces).strip() + " …"))
        if error:
            entries.append(("assistant", "error", error))
        self.store.append(*entries)

    def _capture_goal(self, text: str, about: str, conversation: list[Message]) -> None:
        """The first chat answer (to "What kind of AI do you want to make?") is the goal."""
        if about != "chat" or not text or self.project.goal.strip():
            return
        if any(m["role"] == "user" and m["kind"] == "chat" for m in conversation):
            return
        goal = clean_text(text, max_chars=MAX_GOAL_CHARS, one_line=True)

        def change(settings: Settings) -> Settings:
            return settings if settings.goal.strip() else replace(settings, goal=goal)

        self.project.update_settings(change)
        self.project.log.record("set_goal", goal=goal)

    def _log_ask(self, about: str, provider: Provider, **details: Any) -> None:
        self.project.log.record(
            "agent_ask",
            about=about,
            provider=provider.name,
            model=provider.model or None,
            **details,
        )

    # --- the proactive agent ---------------------------------------------------------------

    @property
    def proactive_enabled(self) -> bool:
        return self.project.settings.agents.proactive_enabled

    def set_proactive_enabled(self, on: bool) -> None:
        self.project.update_settings(
            lambda s: s.with_agents(lambda a: replace(a, proactive_enabled=bool(on)))
        )
        self.project.log.record("agent_proactive_toggle", enabled=bool(on))

    @property
    def proactive_interval(self) -> float:
        """Seconds between looks: the user's own setting, else the project's (at least 30 s)."""
        return choice.proactive_interval(self.project.settings)

    def waiting_reason(self, *, patient: bool = True) -> str | None:
        """Why an unprompted look should wait a little, or None: a reply is being written or
        was just written (the user is reading it), or, when `patient`, the opening question
        is unanswered (for at most GREETING_PATIENCE seconds)."""
        held = self.hold() if self.hold is not None else None
        if held is not None:
            return held
        with self._lock:
            if self._replies_running:
                return "a reply is being written"
            ended = self._reply_ended
        if ended is not None and time.monotonic() - ended < QUIET_AFTER_REPLY:
            return "a reply was just written"
        conversation = self.conversation()
        replies = [
            float(m.get("ts") or 0)
            for m in conversation
            if m["role"] == "assistant" and m["kind"] in KIND_OF_ASK.values()
        ]
        if replies and 0 <= time.time() - max(replies) < QUIET_AFTER_REPLY:
            return "a reply was just written"  # by another process (the CLI beside the page)
        answered = self.project.goal.strip() or any(m["role"] == "user" for m in conversation)
        greeted = min((float(m.get("ts") or 0) for m in conversation), default=0.0)
        if patient and not answered and time.time() - greeted < GREETING_PATIENCE:
            return "the opening question is not answered yet"
        return None

    def proactive_pass(self, force: bool = False) -> str | None:
        """One look; the advice (saved and logged), or None: unchanged, nothing new, off, busy."""
        return self.proactive.look(self, force=force)

    # --- what is used and where data goes --------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Providers, the switch and the endpoints off this machine; never an API key."""
        described: dict[str, Any] = {}
        for agent in ("passive", "proactive"):
            info: dict[str, object] = {**self._provider(agent).describe()}
            if agent in self._config_errors:
                info["error"] = str(self._config_errors[agent])
            described[agent] = info
        remote = [
            choice.endpoint_of(self._provider(agent))
            for agent in ("passive", "proactive")
            if choice.sends_off_machine(self._provider(agent))
        ]
        return {
            **described,
            "proactive_enabled": self.proactive_enabled,
            "proactive_interval": self.proactive_interval,
            "sends_images_to": list(dict.fromkeys(e for e in remote if e)),
            "consent_needed": self.consent_needed(),
        }
