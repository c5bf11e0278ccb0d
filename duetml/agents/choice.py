"""Which LLM each agent uses, where its data goes, and the user's approval of endpoints.

Settings live in the project's `duetml.toml` (`[agents.passive]`, `[agents.proactive]`) with
user-level defaults in `config.toml` under DUETML_HOME / the platform's data folder, and
`DUETML_PASSIVE_LLM` / `DUETML_PROACTIVE_LLM` override both (`duetml.llm.config` decides).

Approval, like VS Code's Workspace Trust or direnv's `allow`: a project folder may come from
someone else, so nothing in it may decide on its own where this user's photos or API key go.
An endpoint needs this user's approval for this project when the project's file chose it
(its `base_url`: it receives the key from the environment) or when it is off this machine (it
receives the photos). Approvals live in the user's own data folder (`approved-endpoints.json`
under DUETML_HOME), keyed by the project's resolved path and the endpoint: a project copied
elsewhere, or whose endpoint was changed, asks again. A `cloud_consent` list in the project's
own file (written by duetml before 0.2) counts for nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from duetml import jsonfile
from duetml.errors import DuetmlError, LLMError, LLMSettingsError
from duetml.llm import AgentLLMConfig, Provider, display_url, provider_for, resolve_agent_config
from duetml.llm.privacy import endpoint_key
from duetml.settings import AGENTS, AgentLLMChoice, Settings, load_toml, parse_settings

if TYPE_CHECKING:
    from duetml.project import Project

CONSENT_KEY = "cloud_consent"
LOCAL_SPEC = "ollama:qwen2.5vl"
APPROVALS_FILE = "approved-endpoints.json"
APPROVALS_FORMAT = 1

DEFAULT_INTERVAL = 60.0
# The user's own setting (config.toml) or a CLI flag may ask for looks this often...
MIN_INTERVAL = 5.0
# ...but a project file, which may come from someone else, cannot make the agent call the
# LLM (and spend the user's tokens) more often than this.
MIN_PROJECT_INTERVAL = 30.0

# Why an endpoint waits for approval; the page and the CLI say it in these words.
REASON_PROJECT = "project"  # the project's duetml.toml chose it: it may be anyone's server
REASON_CLOUD = "cloud"  # off this machine: the photos leave it


class CloudConsentRequired(LLMError):
    """Photos would go to an endpoint off this machine and the user has not agreed yet."""

    summary = "an endpoint awaits approval"
    http_status = 428  # the web UI asks, then calls AgentSession.allow_cloud(endpoint)

    def __init__(
        self,
        message: str,
        endpoint: str,
        agent: str,
        reason: str = REASON_CLOUD,
        web: str | None = None,
    ) -> None:
        super().__init__(message, web=web)
        self.endpoint = endpoint
        self.agent = agent
        self.reason = reason


def load_user_settings() -> Settings:
    """The user-level defaults file (same shape as duetml.toml), or empty when there is none."""
    from duetml.paths import user_config_file

    path = user_config_file()
    try:
        return parse_settings(load_toml(path, str(path)))
    except (FileNotFoundError, NotADirectoryError):
        return Settings()


def resolve(
    agent: str, project_settings: Settings, env: Mapping[str, str] | None = None
) -> AgentLLMConfig:
    return resolve_agent_config(
        agent, project_settings, load_user_settings(), os.environ if env is None else env
    )


def make_provider(config: AgentLLMConfig, **kwargs: Any) -> Provider:
    return provider_for(config, **kwargs)


def endpoint_of(provider: Provider) -> str | None:
    """The endpoint as shown to people and stored for approval (no credentials, no query)."""
    return display_url(provider.base_url)


def sends_off_machine(provider: Provider) -> bool:
    return provider.enabled and not provider.is_local()


def proactive_interval(project_settings: Settings) -> float:
    """Seconds between the proactive agent's looks: the user's own setting, else the project's
    (never under MIN_PROJECT_INTERVAL), else the default."""
    try:
        mine = load_user_settings().agents.proactive_interval_seconds
    except DuetmlError:
        mine = None
    if mine is not None:
        return max(float(mine), MIN_INTERVAL)
    value = project_settings.agents.proactive_interval_seconds
    return max(DEFAULT_INTERVAL if value is None else float(value), MIN_PROJECT_INTERVAL)


# --- approvals, in the user's own data folder ------------------------------------------------


class Approval(TypedDict):
    """One entry of approved-endpoints.json (entries may carry more keys; they are kept)."""

    project: str  # project_key(): the project's resolved path
    endpoint: str
    approved_at: NotRequired[str]  # UTC, ISO 8601


def approvals_file() -> Path:
    from duetml.paths import user_home

    return user_home() / APPROVALS_FILE


def project_key(root: Path) -> str:
    """A project as approvals know it: its resolved path, so a copy elsewhere asks again."""
    return str(Path(root).resolve())


def _read_approvals() -> list[Approval]:
    # Unreadable, of the wrong type or nested too deep means nothing is approved: the user
    # is asked again, which is safe.
    data = jsonfile.read_object(approvals_file())
    entries = data.get("approvals")
    if not isinstance(entries, list):
        return []
    # Checked right here: an entry names its project and endpoint as strings.
    return [
        cast(Approval, e)
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("project"), str)
        and isinstance(e.get("endpoint"), str)
    ]


def approved_endpoints(root: Path) -> set[str]:
    """The endpoints this user approved for the project at `root`; an entry that does not
    parse counts for nothing (an "(invalid URL)" stored by an older duetml approves no
    server). Compare with `is_approved`, which goes by scheme, host and port."""
    key = project_key(root)
    return {
        e["endpoint"]
        for e in _read_approvals()
        if e["project"] == key and endpoint_key(e["endpoint"]) is not None
    }


def is_approved(root: Path, endpoint: str | None) -> bool:
    """Whether this user approved, for this project, the server `endpoint` reaches (compared
    by scheme, host and port as the HTTP client will use them)."""
    origin = endpoint_key(endpoint)
    return origin is not None and origin in {endpoint_key(e) for e in approved_endpoints(root)}


def _change_approvals(change: Callable[[list[Approval]], list[Approval]]) -> None:
    from duetml import atomic
    from duetml.locks import hold

    path = approvals_file()
    try:
        with hold(
            path.with_name(f".{APPROVALS_FILE}.lock"),
            timeout=10,
            busy_message="Another duetml is saving approvals: try again in a moment.",
        ):
            entries = change(_read_approvals())
            payload = {"format": APPROVALS_FORMAT, "approvals": entries}
            atomic.write_text(path, json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise DuetmlError(
            f"Could not save your approval in {path} ({exc.strerror or exc}): make that "
            "folder writable, or set DUETML_HOME to one that is."
        ) from None


def approve(root: Path, endpoint: str) -> None:
    """Remember that this user lets the project at `root` use `endpoint`."""
    key = project_key(root)
    origin = endpoint_key(endpoint)
    if origin is None:
        raise LLMSettingsError(
            f"'{endpoint[:80]}' is not an address duetml can approve: fix the base_url in "
            "duetml.toml (e.g. http://127.0.0.1:11434), then approve again."
        )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def change(entries: list[Approval]) -> list[Approval]:
        kept = [e for e in entries if (e["project"], endpoint_key(e["endpoint"])) != (key, origin)]
        shown = display_url(endpoint) or origin
        return [*kept, {"project": key, "endpoint": shown, "approved_at": stamp}]

    _change_approvals(change)


def revoke(root: Path, endpoint: str | None = None) -> list[str]:
    """Forget the approvals of the project at `root` (one endpoint, or all); returns them."""
    key = project_key(root)
    removed: list[str] = []

    def change(entries: list[Approval]) -> list[Approval]:
        kept = []
        for entry in entries:
            if entry["project"] == key and (
                endpoint is None or endpoint_key(endpoint) == endpoint_key(entry["endpoint"])
            ):
                removed.append(entry["endpoint"])
            else:
                kept.append(entry)
        return kept

    _change_approvals(change)
    return removed


def approval_reason(provider: Provider, config: AgentLLMConfig | None) -> str | None:
    """Why `provider` needs this user's approval before anything is sent, or None."""
    if not provider.enabled:
        return None
    if config is not None and config.endpoint_from_project:
        return REASON_PROJECT
    if not provider.is_local():
        return REASON_CLOUD
    return None


def key_may_go_to(provider: Provider, config: AgentLLMConfig | None, root: Path | None) -> bool:
    """Whether the API key (and any request) may reach this provider's endpoint.

    The default endpoints and those from the user's own settings or environment may; one the
    project's file chose only after the user approved it for this project.
    """
    if config is None or not config.endpoint_from_project:
        return True
    return root is not None and is_approved(root, provider.base_url)


def needs_approval(provider: Provider, config: AgentLLMConfig | None, root: Path) -> str | None:
    """The reason approval is still missing for this project, or None when all is clear."""
    reason = approval_reason(provider, config)
    if reason is None or is_approved(root, provider.base_url):
        return None
    return reason


def consent_error(
    provider: Provider, agent: str, reason: str = REASON_CLOUD
) -> CloudConsentRequired:
    endpoint = endpoint_of(provider) or "(unknown endpoint)"
    spec = f"{provider.name}:{provider.model}" if provider.model else provider.name
    if reason == REASON_PROJECT:
        what = (
            f"This project's duetml.toml sends the {agent} agent ({spec}) to {endpoint}: "
            f"nothing goes there (not your photos, not your {provider.key_env_var or 'API key'}) "
            "until you approve it for this project"
        )
    else:
        what = (
            f"The {agent} agent ({spec}) would send this project's photos and descriptions to "
            f"{endpoint}, which is not on this machine: confirm once"
        )
    return CloudConsentRequired(
        f"{what} by running the command again with `--allow-cloud`, with `duetml llm approve`, "
        f"or by answering yes in `duetml chat` or the web page; or keep them here with "
        f"`duetml llm use {agent} {LOCAL_SPEC}`.",
        endpoint=endpoint,
        agent=agent,
        reason=reason,
        web=f"{what} with “Allow for this project” above the conversation; or keep them on "
        f"this machine by choosing {LOCAL_SPEC} for the {agent} agent in Assistant settings.",
    )


def describe_need(agent: str, endpoint: str, reason: str) -> str:
    """One sentence for a yes/no question about an endpoint waiting for approval."""
    if reason == REASON_PROJECT:
        return (
            f"This project's duetml.toml sends the {agent} agent to {endpoint}, which you have "
            "not approved: it would receive this project's photos and your API key."
        )
    return (
        f"The {agent} agent would send this project's photos to {endpoint}, which is not on "
        "this machine."
    )


def pending_approvals(project: Project) -> list[dict[str, str]]:
    """Agents whose endpoint waits for this user's approval, resolved from the settings."""
    needs: list[dict[str, str]] = []
    for agent in AGENTS:
        try:
            config = resolve(agent, project.settings)
            provider = make_provider(config)
        except DuetmlError:
            continue
        reason = needs_approval(provider, config, project.root)
        if reason is not None:
            needs.append(
                {"agent": agent, "endpoint": endpoint_of(provider) or "", "reason": reason}
            )
    return needs


def grant_consent(project: Project, endpoint: str) -> None:
    """This user approves `endpoint` for this project (stored in their data folder)."""
    approve(project.root, endpoint)
    project.log.record("agent_cloud_consent", endpoint=endpoint)


def choose(
    project: Project,
    agent: str,
    spec: str,
    base_url: str | None = None,
    keep_endpoint: bool = False,
) -> list[AgentLLMConfig]:
    """Store "provider:model" (and an endpoint) for `agent` ("passive", "proactive" or "both").

    ``keep_endpoint`` (the page, which takes no addresses): an agent that stays with its
    provider keeps the endpoint duetml.toml names for it, as it was: still chosen by the
    project's file, so still waiting for approval; only an address the user typed
    (``base_url``, the CLI's --base-url) counts as the user's own choice.
    """
    from duetml.llm import parse_spec

    targets = AGENTS if agent == "both" else (agent,)
    if agent != "both" and agent not in AGENTS:
        raise DuetmlError(f"Unknown agent '{agent[:30]}': choose passive, proactive or both.")
    provider, model = parse_spec(spec)
    section = AgentLLMChoice(provider=provider, model=model, base_url=base_url or None)

    def section_for(settings: Settings, name: str) -> AgentLLMChoice:
        current = settings.agents.llm(name)
        if keep_endpoint and base_url is None and current.provider == provider:
            return replace(section, base_url=current.base_url)
        return section

    def change(settings: Settings) -> Settings:
        agents = settings.agents
        for name in targets:
            agents = agents.with_llm(name, section_for(settings, name))
        return replace(settings, agents=agents)

    # Validate before writing: a bad URL must not reach the file.
    trial = change(project.settings)
    for name in targets:
        resolve_agent_config(name, trial, Settings(), {})
    project.update_settings(change)
    if base_url:
        for name in targets:
            chosen = make_provider(resolve_agent_config(name, trial, Settings(), {}))
            endpoint = endpoint_of(chosen)
            # The user chose this server on this machine just now; one off the machine still
            # asks once, as the default cloud endpoint does, because photos would leave it.
            if endpoint and chosen.is_local():
                approve(project.root, endpoint)
    project.log.record(
        "agent_llm_use",
        agents=list(targets),
        provider=provider,
        model=model,
        base_url=display_url(base_url),
    )
    return [resolve(name, project.settings) for name in targets]
