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
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from duetml.agents import choice, prompts
from duetml.agents.context import DEFAULT_BUDGET, Budget, ContextBuilder
from duetml.agents.conversation import ConversationStore
from duetml.agents.passive import ASKS, KIND_OF_ASK, PassiveAgent
from duetml.agents.proactive import LOCK_FILE, ProactiveAgent, is_nothing_to_add, state_signature
from duetml.errors import DuetmlError
from duetml.llm import AgentLLMConfig, Provider, clean_text

if TYPE_CHECKING:
    from duetml.project import Project

MAX_GOAL_CHARS = 500
MAX_ADVICE_CHARS = 4_000


class AgentSession:
    """Both agents of one open project; used by `duetml chat/ask/advise` and the web UI."""

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
        self._setup_providers()
        self.store.ensure_greeting(self.GREETING)

    # --- providers -------------------------------------------------------------------------

    def _setup_providers(self) -> None:
        self._config_errors: dict[str, DuetmlError] = {}
        self._configs: dict[str, AgentLLMConfig] = {}
        self._vision: dict[str, bool] = {}
        providers = {name: given or self._resolve(name) for name, given in self._given.items()}
        self.passive_provider: Provider = providers["passive"]
        self.proactive_provider: Provider = providers["proactive"]
        self.passive = PassiveAgent(self.passive_provider, self.builder)
        self.proactive = ProactiveAgent(self.proactive_provider, self.builder)

    def _resolve(self, agent: str) -> Provider:
        try:
            config = choice.resolve(agent, self.project.settings)
            provider = choice.make_provider(config)
        except DuetmlError as exc:
            # Broken settings must not stop the rest of duetml: the agent reports it when used.
            from duetml.llm import get_provider

            self._config_errors[agent] = exc
            return get_provider("none", agent=agent)
        self._configs[agent] = config
        return provider

    def refresh(self) -> None:
        """Re-read the settings (after `duetml llm use` or an edit of duetml.toml)."""
        from duetml.settings import read_settings

        self.project.settings = read_settings(self.project.root)
        with self._lock:
            self._setup_providers()

    def settings_error(self, agent: str) -> DuetmlError | None:
        """The problem in the settings that keeps `agent` from working, if any."""
        return self._config_errors.get(agent)

    def _provider(self, agent: str) -> Provider:
        return self.passive_provider if agent == "passive" else self.proactive_provider

    def _check_ready(self, agent: str) -> None:
        """Raise the sentence the user needs before anything is sent (settings, consent)."""
        if agent in self._config_errors:
            raise self._config_errors[agent]
        provider = self._provider(agent)
        reason = self._approval_missing(agent)
        if reason is not None:
            raise choice.consent_error(provider, agent, reason)

    def _approval_missing(self, agent: str) -> str | None:
        """Why this agent's endpoint still waits for the user's approval, or None."""
        return choice.needs_approval(
            self._provider(agent), self._configs.get(agent), self.project.root
        )

    def _sees_images(self, agent: str) -> bool:
        """Asks the server once per session whether the model accepts images."""
        with self._lock:
            known = self._vision.get(agent)
        if known is not None:
            return known
        provider = self._provider(agent)
        vision = provider.model_info().vision is not False  # unknown: try images
        with self._lock:
            self._vision[agent] = vision
        if not vision:
            self._tell_text_only(agent, provider)
        return vision

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

    def pop_notices(self) -> list[str]:
        """One-time notices for the user (e.g. "this model cannot see images"), then cleared."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    # --- consent ---------------------------------------------------------------------------

    def consent_needed(self) -> list[dict[str, str]]:
        """Agents whose endpoint waits for this user's approval for this project.

        `reason` is "project" (the project's file chose the endpoint) or "cloud" (it is off
        this machine); either way nothing is sent there until the user approves.
        """
        needs = []
        for agent in ("passive", "proactive"):
            reason = self._approval_missing(agent)
            if reason is not None:
                endpoint = choice.endpoint_of(self._provider(agent)) or ""
                needs.append({"agent": agent, "endpoint": endpoint, "reason": reason})
        return needs

    def allow_cloud(self, endpoint: str | None = None) -> list[str]:
        """Approve `endpoint` for this project (default: every endpoint that waits for it)."""
        endpoints = [endpoint] if endpoint else [n["endpoint"] for n in self.consent_needed()]
        for item in dict.fromkeys(endpoints):
            choice.grant_consent(self.project, item)
        return list(dict.fromkeys(endpoints))

    # --- the conversation ------------------------------------------------------------------

    def conversation(self) -> list[dict[str, Any]]:
        """Saved messages, oldest first; the greeting is the first one of a new project."""
        return self.store.messages()

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
        try:
            conversation = self.conversation()
            self._capture_goal(user_text, about, conversation)
            vision = self._sees_images("passive")
            messages, context = self.passive.request(user_text, about, conversation, vision=vision)
            for piece in self.passive.stream(messages):
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
        reply = "".join(pieces).strip()
        self.store.append(("user", kind, user_text), ("assistant", kind, reply))
        self._log_ask(
            about,
            provider,
            ok=True,
            images=len(context.images),
            image_bytes=context.image_bytes,
            reply_chars=len(reply),
        )

    def _save_broken_turn(self, kind: str, text: str, pieces: list[str], error: str | None) -> None:
        entries = [("user", kind, text)]
        if pieces:
            entries.append(("assistant", kind, "".join(pieces).strip() + " …"))
        if error:
            entries.append(("assistant", "error", error))
        self.store.append(*entries)

    def _capture_goal(self, text: str, about: str, conversation: list[dict[str, Any]]) -> None:
        """The first chat answer (to "What kind of AI do you want to make?") is the goal."""
        if about != "chat" or not text or self.project.goal.strip():
            return
        if any(m["role"] == "user" and m["kind"] == "chat" for m in conversation):
            return
        goal = clean_text(text, max_chars=MAX_GOAL_CHARS, one_line=True)

        def change(settings: dict[str, Any]) -> None:
            if not str(settings.get("goal", "")).strip():
                settings["goal"] = goal

        choice.update_project_settings(self.project, change)
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
        agents = self.project.settings.get("agents") or {}
        return bool(agents.get("proactive_enabled", True))

    def set_proactive_enabled(self, on: bool) -> None:
        def change(settings: dict[str, Any]) -> None:
            settings.setdefault("agents", {})["proactive_enabled"] = bool(on)

        choice.update_project_settings(self.project, change)
        self.project.log.record("agent_proactive_toggle", enabled=bool(on))

    @property
    def proactive_interval(self) -> float:
        """Seconds between looks: the user's own setting, else the project's (at least 30 s)."""
        return choice.proactive_interval(self.project.settings)

    def proactive_pass(self, force: bool = False) -> str | None:
        """One look; the advice (saved and logged), or None: unchanged, nothing new, off, busy."""
        from filelock import FileLock, Timeout

        if not force and not self.proactive_enabled:
            return None
        if "proactive" in self._config_errors:
            raise self._config_errors["proactive"]
        if not self.proactive_provider.enabled:
            return None
        if not force and self._approval_missing("proactive") is not None:
            # The timer never contacts an endpoint the user has not approved; the page and
            # `duetml llm status` show what waits for approval, `advise` raises the sentence.
            return None
        if not self._proactive_running.acquire(blocking=False):
            return None
        try:
            lock = FileLock(str(self.project.state_dir / LOCK_FILE))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                return None  # another process (the web UI, a second chat) is looking
            try:
                return self._look()
            finally:
                lock.release()
        finally:
            self._proactive_running.release()

    def _look(self) -> str | None:
        provider = self.proactive_provider
        conversation = self.conversation()
        signature = state_signature(self.project, conversation)
        if self.store.state().get("proactive_last_look") == signature:
            return None
        self._check_ready("proactive")
        try:
            vision = self._sees_images("proactive")
            reply = provider.chat(self.proactive.request(conversation, vision=vision)).strip()
        except DuetmlError as exc:
            self._log_pass(provider, "error", error=str(exc))
            raise
        self.store.update_state(lambda state: state.__setitem__("proactive_last_look", signature))
        if is_nothing_to_add(reply):
            self._log_pass(provider, "nothing_to_add")
            return None
        advice = clean_text(reply, max_chars=MAX_ADVICE_CHARS)
        self.store.append(("assistant", "proactive", advice))
        self._log_pass(provider, "advice", advice_chars=len(advice))
        return advice

    def _log_pass(self, provider: Provider, result: str, **details: Any) -> None:
        self.project.log.record(
            "agent_proactive",
            result=result,
            provider=provider.name,
            model=provider.model or None,
            **details,
        )

    # --- what is used and where data goes --------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Providers, the switch and the endpoints off this machine; never an API key."""
        described: dict[str, Any] = {}
        for agent in ("passive", "proactive"):
            info = self._provider(agent).describe()
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
