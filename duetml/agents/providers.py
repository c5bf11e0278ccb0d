"""The agents' providers, from the project's settings, and whether each is ready to be asked.

Broken settings do not stop the rest of duetml: the agent gets the "none" provider and reports
the problem when used. Nothing is sent to an endpoint that waits for the user's approval.
Whether a model sees images and takes tool calls is asked once per session.
`AgentProviders` is a base of `AgentSession`; it declares the session state it uses.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from duetml.agents import choice, text_only
from duetml.agents.context import ContextBuilder
from duetml.agents.notices import Notices
from duetml.agents.passive import PassiveAgent
from duetml.agents.proactive import ProactiveAgent
from duetml.errors import DuetmlError
from duetml.llm import AgentLLMConfig, Provider, display_url
from duetml.llm import window as llm_window
from duetml.settings import read_settings

if TYPE_CHECKING:
    from duetml.project import Project


class AgentProviders(Notices):
    """The passive and the proactive agent's providers, their readiness and the consent."""

    project: Project
    builder: ContextBuilder
    _given: dict[str, Provider | None]
    _lock: threading.Lock

    def _setup_providers(self) -> None:
        self._config_errors: dict[str, DuetmlError] = {}
        self._configs: dict[str, AgentLLMConfig] = {}
        self._vision: dict[str, bool] = {}
        self._tools: dict[str, bool] = {}
        providers = {name: given or self._resolve(name) for name, given in self._given.items()}
        try:
            # The project's [agents] table, always present, hides the user's (as it always did).
            self._cap = llm_window.user_cap(self.project.settings, os.environ)
        except DuetmlError as exc:
            self._cap = None
            for agent in providers:
                self._config_errors.setdefault(agent, exc)
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

    def reachable(self, agent: str) -> tuple[bool | None, str | None]:
        """Whether this agent's LLM server answers now: (True, None), (False, the sentence
        why not), or (None, None) when there is nothing to ask (the agent is off, its settings
        are wrong, or its endpoint waits for the user's approval: it is not contacted).

        One request for the model list, without retries: a stopped local server refuses at
        once, so the page and the proactive timer can ask before every look.
        """
        provider = self._provider(agent)
        if agent in self._config_errors or not provider.enabled:
            return None, None
        if self._approval_missing(agent) is not None:
            return None, None
        try:
            provider.probe()
        except DuetmlError as exc:
            return False, str(exc)
        return True, None

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
        if text_only.is_text_only(provider):  # learned earlier: it broke on photos
            vision = False
        else:
            vision = provider.model_info().vision is not False  # unknown: try images
        with self._lock:
            self._vision[agent] = vision
        if not vision:
            self._tell_text_only(agent, provider)
        return vision

    def _uses_tools(self, agent: str) -> bool:
        """Whether proposals go by tool call (asked once per session) or by fenced JSON."""
        with self._lock:
            known = self._tools.get(agent)
        if known is not None:
            return known
        tools = self._provider(agent).supports_tools()
        with self._lock:
            self._tools[agent] = tools
        return tools

    def _learn_text_only(self, agent: str, provider: Provider) -> None:
        """This model broke on a request with photos: no photos from now on (remembered for
        its server in the user's data folder), and the user told once."""
        learned_before = text_only.is_text_only(provider)
        text_only.remember(provider)
        with self._lock:
            for name in ("passive", "proactive"):  # the other agent may use the same model
                if name == agent or text_only.is_text_only(self._provider(name)):
                    self._vision[name] = False
        spec = f"{provider.name}:{provider.model}"
        self.project.log.record("agent_text_only_learned", agent=agent, model=spec)
        if learned_before:
            return
        notice = (
            f"The model {spec} at {display_url(provider.base_url)} does not take photos: it "
            "gets a description of them instead (duetml remembers this for that server and "
            f"model); for advice that sees the photos choose a vision model, e.g. `duetml llm "
            f"use {agent} {choice.LOCAL_SPEC}`."
        )
        with self._lock:
            self._notices.append(notice)

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
