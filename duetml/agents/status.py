"""What `duetml llm status` shows: providers, reachability, models, vision, where data goes.

Plain data, so the web UI can show the same. Probes use short timeouts and no retries: a
status page must answer in seconds even when a server hangs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from duetml.agents import choice
from duetml.errors import DuetmlError
from duetml.llm import PROVIDERS, Provider, Timeouts, get_provider, provider_for

if TYPE_CHECKING:
    from duetml.project import Project

AGENTS = ("passive", "proactive")


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
    settings = project.settings if project is not None else {}
    quick: dict[str, Any] = {
        "timeout": Timeouts(connect=min(timeout, 3.0), read=timeout),
        "max_retries": 0,
    }
    agents: dict[str, Any] = {}
    servers: dict[tuple[str, str | None], dict[str, Any]] = {}
    probed_by: dict[tuple[str, str | None], str] = {}
    for agent in AGENTS:
        try:
            config = choice.resolve(agent, settings)
            provider = provider_for(config, **quick)
        except DuetmlError as exc:
            agents[agent] = {"error": str(exc)}
            continue
        entry: dict[str, Any] = {
            **provider.describe(),
            "spec": config.spec,
            "source": config.source,
            "model_installed": None,
            "vision": None,
            "error": None,
        }
        root = project.root if project is not None else None
        reason = choice.approval_reason(provider, config)
        entry["chosen_by_project"] = config.endpoint_from_project
        entry["approval_needed"] = (
            reason
            if reason is not None
            and (root is None or entry["endpoint"] not in choice.approved_endpoints(root))
            else None
        )
        if not provider.enabled:
            entry["data_goes_to"] = "nowhere (this agent is off)"
        elif provider.is_local() and not config.endpoint_from_project:
            entry["data_goes_to"] = "this machine"
        else:
            entry["data_goes_to"] = entry["endpoint"]
            entry["consent"] = entry["approval_needed"] is None
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
            try:
                info = provider.model_info()
                entry["model_installed"], entry["vision"] = info.installed, info.vision
            except DuetmlError as exc:
                entry["error"] = str(exc)
        elif provider.enabled:
            # The sentence names the agent whose settings to change, so the agent that did
            # not probe asks once more (a refused connection costs nothing).
            same_agent = probed_by.get(key) == agent
            entry["error"] = servers[key]["error"] if same_agent else _probe(provider)["error"]
        agents[agent] = entry
    # Always say whether a local Ollama is there: it is the private choice.
    ollama = get_provider("ollama", **quick)
    if ("ollama", choice.endpoint_of(ollama)) not in servers:
        servers[("ollama", choice.endpoint_of(ollama))] = _probe(ollama)
    agents_settings = settings.get("agents") or {}
    return {
        "project": str(project.root) if project is not None else None,
        "providers": list(PROVIDERS),
        "agents": agents,
        "proactive_enabled": bool(agents_settings.get("proactive_enabled", True)),
        "proactive_interval": choice.proactive_interval(settings),
        "servers": list(servers.values()),
    }
