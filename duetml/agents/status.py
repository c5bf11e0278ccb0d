"""What `duetml llm status` shows: providers, reachability, models, vision, where data goes,
each model's context and the size of the agent's last request, and a warning when two
different local models would both stay in memory.

Plain data, so the web UI can show the same. Probes use short timeouts and no retries: a
status page must answer in seconds even when a server hangs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from duetml.agents import choice
from duetml.errors import DuetmlError
from duetml.llm import (
    PROVIDERS,
    AgentLLMConfig,
    Provider,
    Timeouts,
    get_provider,
    provider_for,
)
from duetml.llm import window as llm_window
from duetml.llm.types import MemoryUse
from duetml.settings import AGENTS, Settings

if TYPE_CHECKING:
    from duetml.project import Project


def _probe(provider: Provider) -> dict[str, Any]:
    server: dict[str, Any] = {
        "provider": provider.name,
        "endpoint": choice.endpoint_of(provider),
        "is_local": provider.is_local(),
        "key": provider.describe()["key"],
        "reachable": False,
        "error": None,
        "models": [],
    }
    try:
        models = provider.list_models()
    except DuetmlError as exc:
        server["error"] = str(exc)
        return server
    server["reachable"] = True
    server["models"] = [{"name": m.name, "vision": m.vision} for m in models]
    return server


def llm_status(project: Project | None, timeout: float = 5.0) -> dict[str, Any]:
    settings = project.settings if project is not None else Settings()
    quick: dict[str, Any] = {
        "timeout": Timeouts(connect=min(timeout, 3.0), read=timeout),
        "max_retries": 0,
    }
    agents: dict[str, Any] = {}
    in_use: dict[str, Provider] = {}
    last_requests = _last_requests(project)
    servers: dict[tuple[str, str | None], dict[str, Any]] = {}
    probed_by: dict[tuple[str, str | None], str] = {}
    for agent in AGENTS:
        try:
            config = choice.resolve(agent, settings)
            provider = provider_for(config, **quick)
        except DuetmlError as exc:
            agents[agent] = {"error": str(exc)}
            continue
        root = project.root if project is not None else None
        entry = _agent_entry(provider, config, root)
        if provider.enabled and not choice.key_may_go_to(provider, config, root):
            # A server the project's file chose is not contacted, key or not, until the
            # user approved it: asking it for its models would hand it the key.
            entry["error"] = (
                f"not contacted: this project's duetml.toml chose {entry['endpoint']} and you "
                "have not approved it; approve it with `duetml llm approve` if you trust it"
            )
            agents[agent] = entry
            continue
        key = (provider.name, entry["endpoint"])
        if provider.enabled and key not in servers:
            servers[key] = _probe(provider)
            probed_by[key] = agent
        if provider.enabled and servers[key]["reachable"]:
            _ask_model(agent, provider, entry, in_use)
        elif provider.enabled:
            # The sentence names the agent whose settings to change, so the agent that did
            # not probe asks once more (a refused connection costs nothing).
            same_agent = probed_by.get(key) == agent
            entry["error"] = servers[key]["error"] if same_agent else _probe(provider)["error"]
        if provider.enabled:
            entry["last_request"] = last_requests.get(agent)
        agents[agent] = entry
    # Always say whether a local Ollama is there: it is the private choice.
    ollama = get_provider("ollama", **quick)
    if ("ollama", choice.endpoint_of(ollama)) not in servers:
        servers[("ollama", choice.endpoint_of(ollama))] = _probe(ollama)
    return {
        "project": str(project.root) if project is not None else None,
        "providers": list(PROVIDERS),
        "agents": agents,
        "proactive_enabled": settings.agents.proactive_enabled,
        "proactive_interval": choice.proactive_interval(settings),
        "servers": list(servers.values()),
        "max_context": _cap(project),
        "memory_warning": _two_models_warning(in_use),
    }


def _agent_entry(provider: Provider, config: AgentLLMConfig, root: Path | None) -> dict[str, Any]:
    """What the agent uses, who chose it, whether it waits for approval, where data goes."""
    entry: dict[str, Any] = {
        **provider.describe(),
        "spec": config.spec,
        "source": config.source,
        "model_installed": None,
        "vision": None,
        "error": None,
    }
    reason = choice.approval_reason(provider, config)
    entry["chosen_by_project"] = config.endpoint_from_project
    entry["approval_needed"] = (
        reason
        if reason is not None and (root is None or not choice.is_approved(root, provider.base_url))
        else None
    )
    if not provider.enabled:
        entry["data_goes_to"] = "nowhere (this agent is off)"
    elif provider.is_local() and not config.endpoint_from_project:
        entry["data_goes_to"] = "this machine"
    else:
        entry["data_goes_to"] = entry["endpoint"]
        entry["consent"] = entry["approval_needed"] is None
    return entry


def _ask_model(
    agent: str, provider: Provider, entry: dict[str, Any], in_use: dict[str, Provider]
) -> None:
    """Whether the agent's model is installed, sees images and how large its context is (into
    `entry`); an installed model goes into `in_use`."""
    try:
        info = provider.model_info()
        entry["model_installed"], entry["vision"] = info.installed, info.vision
        if info.installed:  # a model that is not there has no context to show
            profile = provider.model_profile()
            entry["context_length"] = profile.context_length
            entry["image_family"] = profile.family.name
            in_use[agent] = provider
    except DuetmlError as exc:
        entry["error"] = str(exc)


def _last_requests(project: Project | None) -> dict[str, Any]:
    """Each agent's last request as the session saved it (size, images, whether it fitted)."""
    if project is None:
        return {}
    from duetml.agents.conversation import ConversationStore
    from duetml.agents.session import LAST_REQUEST_KEY

    saved = ConversationStore(project.state_dir).state().get(LAST_REQUEST_KEY)
    return saved if isinstance(saved, dict) else {}


def _cap(project: Project | None) -> int | None:
    import os

    try:
        # The project's [agents] table, always present, hides the user's (as it always did).
        settings = project.settings if project is not None else choice.load_user_settings()
        return llm_window.user_cap(settings, os.environ)
    except DuetmlError:
        return None  # the agents report the broken setting themselves


def _model_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def _gigabytes(size: int | None) -> str:
    return "size unknown" if not size else f"{size / 1e9:.1f} GB"


def _two_models_warning(in_use: dict[str, Provider]) -> str | None:
    """Two different models on this machine both stay loaded: say so, with their sizes."""
    if len(in_use) < 2:
        return None
    passive, proactive = in_use["passive"], in_use["proactive"]
    if not (passive.is_local() and proactive.is_local()):
        return None
    same_server = choice.endpoint_of(passive) == choice.endpoint_of(proactive)
    if same_server and _model_name(passive.model) == _model_name(proactive.model):
        return None
    sizes: list[str] = []
    total = 0
    for provider in (passive, proactive):
        memory_use = getattr(provider, "memory_use", None)
        used = MemoryUse(None, False)
        if callable(memory_use):
            try:
                used = memory_use()
            except DuetmlError:
                pass
        size = used.bytes
        total += size or 0
        where = "loaded" if used.loaded else "on disk"
        sizes.append(f"{provider.model} ({_gigabytes(size)} {where})" if size else provider.model)
    together = f", about {total / 1e9:.1f} GB together" if total else ""
    return (
        f"The two agents use different local models, {sizes[0]} and {sizes[1]}: both stay in "
        f"memory{together}; to load only one, give both the same model with "
        f"`duetml llm use both {passive.name}:{passive.model}`."
    )
