"""Which provider, model and endpoint each agent uses: a pure function of settings and env.

Precedence, highest first: `DUETML_PASSIVE_LLM` / `DUETML_PROACTIVE_LLM` ("provider:model"),
the project's settings, the user's settings, then Ollama with its default model. A level
counts only if it names a provider, and then its model and base URL come with it: mixing one
level's provider with another's model would produce combinations nobody chose.

API keys never live in these settings (they would travel with a shared project folder); they
are read from the environment by the provider itself. A base URL chosen by the project's file
is marked (`endpoint_source == "project"`): it takes effect only once this user approved it
(`duetml.agents.choice`), because a received project could otherwise point the user's key
and photos at any server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from duetml.errors import LLMSettingsError
from duetml.llm.privacy import parse_endpoint
from duetml.llm.registry import (
    DEFAULT_MODELS,
    DEFAULT_PROVIDER,
    check_model_name,
    check_provider_name,
    parse_spec,
)
from duetml.settings import AGENTS, AgentLLMChoice, Settings

Source = Literal["env", "project", "user", "default"]

ENV_VARS: dict[str, str] = {agent: f"DUETML_{agent.upper()}_LLM" for agent in AGENTS}

_SECRET_KEYS = frozenset({"api_key", "apikey", "key", "token", "secret", "password"})


@dataclass(frozen=True)
class AgentLLMConfig:
    agent: str
    provider: str
    model: str | None
    base_url: str | None
    source: Source
    # Where `base_url` came from; "project" means a settings file that may have come from
    # someone else chose where this agent's data (and key) go, so the user must approve it.
    endpoint_source: Source | None = None

    @property
    def endpoint_from_project(self) -> bool:
        return self.endpoint_source == "project"

    @property
    def spec(self) -> str:
        """The "provider:model" form users type, e.g. "ollama:qwen2.5vl"."""
        return self.provider if self.model is None else f"{self.provider}:{self.model}"


def _agent_section(settings: Settings, agent: str, where: str) -> AgentLLMChoice:
    section = settings.agents.llm(agent)
    leaked = sorted(k for k in section.other if k.lower() in _SECRET_KEYS)
    if leaked:
        raise LLMSettingsError(
            f"The {where} settings store '{leaked[0]}' for the {agent} agent: remove it from the "
            "file and set the key in the environment (e.g. OPENAI_API_KEY) instead."
        )
    return section


def _check_base_url(text: str | None, where: str) -> str | None:
    if not text:
        return None
    try:
        parse_endpoint(text)
    except ValueError as exc:
        if "user or password" in str(exc):
            raise LLMSettingsError(
                f"The base_url in the {where} settings contains a user or password: remove "
                "it from the file, credentials belong in the environment."
            ) from None
        raise LLMSettingsError(
            f"The base_url '{text[:80]}' in the {where} settings is not an http(s) URL duetml "
            f"can use ({exc}): write one like http://127.0.0.1:11434."
        ) from None
    return text


def _from_section(agent: str, section: AgentLLMChoice, source: Source) -> AgentLLMConfig:
    provider = check_provider_name(section.provider or "")
    if provider == "none":
        model = None
    elif section.model:
        model = check_model_name(section.model)
    else:
        model = DEFAULT_MODELS[provider]
    base_url = None if provider == "none" else _check_base_url(section.base_url, source)
    return AgentLLMConfig(agent, provider, model, base_url, source, source if base_url else None)


def resolve_agent_config(
    agent: str,
    project: Settings,
    user: Settings,
    env: Mapping[str, str],
) -> AgentLLMConfig:
    """The effective provider/model/base_url for `agent` ("passive" or "proactive")."""
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {AGENTS}, not {agent!r}")

    levels: list[tuple[Source, AgentLLMChoice]] = [
        ("project", _agent_section(project, agent, "project")),
        ("user", _agent_section(user, agent, "user")),
    ]
    from_files = [
        _from_section(agent, section, source) for source, section in levels if section.provider
    ]

    env_spec = (env.get(ENV_VARS[agent]) or "").strip()
    if env_spec:
        provider, model = parse_spec(env_spec)
        # The env var has no room for a URL; keep the one configured for the same provider,
        # so overriding the model of a LAN server never silently sends photos to the cloud.
        same = next((c for c in from_files if c.provider == provider), None)
        if same is None or same.base_url is None:
            return AgentLLMConfig(agent, provider, model, None, "env")
        return AgentLLMConfig(agent, provider, model, same.base_url, "env", same.endpoint_source)

    if from_files:
        return from_files[0]
    return AgentLLMConfig(
        agent, DEFAULT_PROVIDER, DEFAULT_MODELS[DEFAULT_PROVIDER], None, "default"
    )
