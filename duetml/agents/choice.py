"""Which LLM each agent uses, where its data goes, and the user's consent to cloud endpoints.

Settings live in the project's `duetml.toml` (`[agents.passive]`, `[agents.proactive]`) with
user-level defaults in `config.toml` under DUETML_HOME / the platform's data folder, and
`DUETML_PASSIVE_LLM` / `DUETML_PROACTIVE_LLM` override both (`duetml.llm.config` decides).

Consent: the first time a project would send its photos to an endpoint that is not on this
machine, the user must say yes once; the endpoints they accepted are stored in the project's
`[agents] cloud_consent` list, so a project copied to another person asks them again only if
its settings were changed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from duetml.errors import DuetmlError, LLMError
from duetml.llm import AgentLLMConfig, Provider, display_url, provider_for, resolve_agent_config
from duetml.llm.config import AGENTS

if TYPE_CHECKING:
    from duetml.project import Project

CONSENT_KEY = "cloud_consent"
LOCAL_SPEC = "ollama:qwen2.5vl"


class CloudConsentRequired(LLMError):
    """Photos would go to an endpoint off this machine and the user has not agreed yet."""

    http_status = 428  # the web UI asks, then calls AgentSession.allow_cloud(endpoint)

    def __init__(self, message: str, endpoint: str, agent: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.agent = agent


def load_user_settings() -> dict[str, Any]:
    """The user-level defaults file, or {} when there is none."""
    from duetml.paths import user_config_file

    path = user_config_file()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DuetmlError(f"{path} is not valid TOML ({exc}): fix or delete it.") from None


def resolve(
    agent: str, project_settings: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> AgentLLMConfig:
    return resolve_agent_config(
        agent, project_settings, load_user_settings(), os.environ if env is None else env
    )


def make_provider(config: AgentLLMConfig) -> Provider:
    return provider_for(config)


def endpoint_of(provider: Provider) -> str | None:
    """The endpoint as shown to people and stored for consent (no credentials, no query)."""
    return display_url(provider.base_url)


def sends_off_machine(provider: Provider) -> bool:
    return provider.enabled and not provider.is_local()


def consented(settings: Mapping[str, Any]) -> set[str]:
    agents = settings.get("agents") or {}
    value = agents.get(CONSENT_KEY) if isinstance(agents, Mapping) else None
    return {str(v) for v in value} if isinstance(value, list) else set()


def needs_consent(provider: Provider, settings: Mapping[str, Any]) -> bool:
    return sends_off_machine(provider) and endpoint_of(provider) not in consented(settings)


def consent_error(provider: Provider, agent: str) -> CloudConsentRequired:
    endpoint = endpoint_of(provider) or "(unknown endpoint)"
    spec = f"{provider.name}:{provider.model}" if provider.model else provider.name
    return CloudConsentRequired(
        f"The {agent} agent ({spec}) would send this project's photos and descriptions to "
        f"{endpoint}, which is not on this machine: confirm once by running the command again "
        f"with `--allow-cloud` (or by answering yes in `duetml chat` or the web page), or keep "
        f"them here with `duetml llm use {agent} {LOCAL_SPEC}`.",
        endpoint=endpoint,
        agent=agent,
    )


def update_project_settings(project: Project, change: Callable[[dict[str, Any]], None]) -> None:
    """Read-modify-write `duetml.toml` under the data lock, so concurrent edits are not lost."""
    from duetml.settings import read_settings, write_settings

    with project.data_lock():
        settings = read_settings(project.root)
        change(settings)
        write_settings(project.root, settings)
    project.settings = settings


def grant_consent(project: Project, endpoint: str) -> None:
    def change(settings: dict[str, Any]) -> None:
        agents = settings.setdefault("agents", {})
        known = [str(v) for v in agents.get(CONSENT_KEY) or [] if str(v) != endpoint]
        agents[CONSENT_KEY] = [*known, endpoint]

    update_project_settings(project, change)
    project.log.record("agent_cloud_consent", endpoint=endpoint)


def choose(
    project: Project, agent: str, spec: str, base_url: str | None = None
) -> list[AgentLLMConfig]:
    """Store "provider:model" (and an endpoint) for `agent` ("passive", "proactive" or "both")."""
    from duetml.llm import parse_spec

    targets = AGENTS if agent == "both" else (agent,)
    if agent != "both" and agent not in AGENTS:
        raise DuetmlError(f"Unknown agent '{agent[:30]}': choose passive, proactive or both.")
    provider, model = parse_spec(spec)
    section: dict[str, Any] = {"provider": provider, "model": model, "base_url": base_url or None}
    # Validate before writing: a bad URL must not reach the file.
    trial = {"agents": {name: section for name in targets}}
    for name in targets:
        resolve_agent_config(name, trial, {}, {})

    def change(settings: dict[str, Any]) -> None:
        agents = settings.setdefault("agents", {})
        for name in targets:
            agents[name] = dict(section)

    update_project_settings(project, change)
    project.log.record(
        "agent_llm_use",
        agents=list(targets),
        provider=provider,
        model=model,
        base_url=display_url(base_url),
    )
    return [resolve(name, project.settings) for name in targets]
