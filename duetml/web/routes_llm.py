"""The assistant's settings on the page: each agent's provider and model, as `duetml llm use`.

The page offers what `duetml llm status` knows (the providers, the models a reachable Ollama
has, where each agent's data goes) and saves through the same core call as the CLI
(`agents.choice.choose`), with its checks. It takes no addresses: an agent keeps the endpoint
it has, and an endpoint the project's file chose, or one off this machine, still waits for the
user's approval (the page's Approve, /api/agents/consent): choosing a model here approves
nothing. A server the project chose and the user has not approved is not even asked for its
models (agents.status does not contact it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import get, post
from litestar.params import JSONBody, KwargDefinition

from duetml.errors import page_wording
from duetml.llm.registry import MODEL_NAME_PATTERN
from duetml.web.errors import AGENT_ERROR_RESPONSES, scrub
from duetml.web.payloads import LLMSettings, OllamaServer
from duetml.web.routes_agents import describe, public_description
from duetml.web.state import InjectedWebState, WebState

PROBE_SECONDS = 3.0  # a settings panel answers in seconds even when a server hangs


@dataclass
class LLMChoice:
    agent: Literal["passive", "proactive", "both"]
    provider: Literal["ollama", "openai", "none"]
    # The schema says what the registry accepts (empty: the provider's default model), so a
    # client knows a name with spaces or symbols is refused before it sends one.
    model: Annotated[
        str, KwargDefinition(max_length=200, pattern=rf"^\s*(?:{MODEL_NAME_PATTERN})?\s*$")
    ] = ""


def _settings(web: WebState) -> LLMSettings:
    from duetml.agents.status import llm_status
    from duetml.llm.config import ENV_VARS

    status = llm_status(web.project, timeout=PROBE_SECONDS)
    roots = (web.project.root,)
    agents: dict[str, Any] = {}
    for agent, entry in status["agents"].items():
        shown = public_description(entry)
        if isinstance(shown.get("error"), str):
            shown["error"] = scrub(shown["error"], roots)
        shown.pop("last_request", None)
        # An environment variable in the shell that started the server wins over the file.
        shown["overridden_by"] = ENV_VARS[agent] if os.environ.get(ENV_VARS[agent]) else None
        agents[agent] = shown
    ollama: list[OllamaServer] = [
        {
            "endpoint": server["endpoint"],
            "reachable": server["reachable"],
            "problem": scrub(page_wording(server["error"]), roots) if server["error"] else None,
            "models": [m["name"] for m in server["models"]],
        }
        for server in status["servers"]
        if server["provider"] == "ollama"
    ]
    return {"providers": status["providers"], "agents": agents, "ollama": ollama}


@get(
    "/api/agents/llm",
    responses=AGENT_ERROR_RESPONSES,
    sync_to_thread=True,
    summary="Each agent's provider and model, and the models a reachable Ollama has",
)
def llm_settings(web: InjectedWebState) -> LLMSettings:
    return _settings(web)


# A path of its own, not a POST beside the GET: Litestar answers OPTIONS on a path with the
# methods of its first handler only (Allow: GET, OPTIONS), which misdescribes the API.
@post(
    "/api/agents/llm/choice",
    responses=AGENT_ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Choose an agent's provider and model, as the CLI's llm use does (approves nothing)",
)
def choose_llm(web: InjectedWebState, data: JSONBody[LLMChoice]) -> LLMSettings:
    from duetml.agents import choice

    model = data.model.strip()
    spec = data.provider if data.provider == "none" or not model else f"{data.provider}:{model}"
    choice.choose(web.project, data.agent, spec, keep_endpoint=True)
    web.changed()  # re-reads duetml.toml and refreshes the agents before answering
    return {**_settings(web), "consent_needed": describe(web).consent_needed}


LLM_ROUTES = [llm_settings, choose_llm]
