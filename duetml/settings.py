"""The project's human-readable settings file, `duetml.toml`, as a typed record.

It holds what a person may want to read or edit (goal, backbone, which LLM each agent uses);
machine state lives in `.duetml/`. `format` lets an older duetml refuse a newer project
instead of misreading it.

`parse_settings` turns the file's TOML into a frozen `Settings` and `settings_to_toml` turns
one back; every reader uses attributes. A person edits this file by hand, so parsing is
forgiving where the readers always were: a value of the wrong shape is kept verbatim in
`other` (a rewrite loses nothing) and its typed field stays unset; the sentence about it comes
from whoever uses it (an agent's LLM choice is checked by `duetml.llm.config` when that agent
is used, so one broken agent does not stop the rest of duetml). The user's own defaults file
(`config.toml`) has the same shape and parses with the same function.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomli_w

from duetml import atomic
from duetml.errors import DuetmlError, ProjectTooNewError

SETTINGS_FILE = "duetml.toml"
FORMAT_VERSION = 1
DEFAULT_BACKBONE = "efficientnet-lite0"
# fp32 stays the default: int8 (`duetml train --precision int8`) extracts faster and was within
# 0.3 points of fp32 on Caltech, but one demo photo in 100 went the other way with a linear SVM
# and the data review found 3 of 5 planted mislabels instead of 4 (bench/bench_int8.py).
# A duetml.toml without `precision` was written before int8 existed: that project is fp32.
DEFAULT_PRECISION = "fp32"
LEGACY_PRECISION = "fp32"
DEFAULT_INTERVAL_SECONDS = 60
# The two agents; each has its own `[agents.NAME]` table choosing its LLM.
AGENTS: tuple[str, ...] = ("passive", "proactive")
# The cap on the context duetml asks an LLM for, `[agents] max_context_tokens`.
MAX_CONTEXT_KEY = "max_context_tokens"
INTERVAL_KEY = "proactive_interval_seconds"


@dataclass(frozen=True)
class AgentLLMChoice:
    """`[agents.passive]` or `[agents.proactive]`: the LLM the file names for one agent.

    Checked (known provider, sane model name, http(s) URL) by `duetml.llm.config` when used.
    """

    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    # Keys duetml does not use (an API key someone wrote here is refused when used).
    other: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentSettings:
    """The `[agents]` table."""

    passive: AgentLLMChoice = AgentLLMChoice()
    proactive: AgentLLMChoice = AgentLLMChoice()
    proactive_enabled: bool = True
    # None: not set (or not a positive number of seconds); the reader picks the default.
    proactive_interval_seconds: float | None = None
    max_context_tokens: int | None = None
    other: Mapping[str, object] = field(default_factory=dict)

    def llm(self, agent: str) -> AgentLLMChoice:
        if agent not in AGENTS:
            raise ValueError(f"agent must be one of {AGENTS}, not {agent!r}")
        return self.passive if agent == "passive" else self.proactive

    def with_llm(self, agent: str, choice: AgentLLMChoice) -> AgentSettings:
        if agent == "passive":
            return replace(self, passive=choice)
        self.llm(agent)  # refuses an unknown name
        return replace(self, proactive=choice)


@dataclass(frozen=True)
class Settings:
    goal: str = ""
    backbone: str = DEFAULT_BACKBONE
    # "int8" or "fp32" (checked by duetml.backbones when used); None: the file has no such line
    # (a project from before int8), which means LEGACY_PRECISION and is not written back.
    precision: str | None = None
    agents: AgentSettings = AgentSettings()
    format: int = FORMAT_VERSION
    # Top-level keys duetml does not use, kept so a rewrite loses nothing.
    other: Mapping[str, object] = field(default_factory=dict)

    def with_agents(self, change: Callable[[AgentSettings], AgentSettings]) -> Settings:
        return replace(self, agents=change(self.agents))


def default_settings(goal: str = "") -> Settings:
    """What `duetml init` writes."""
    return Settings(
        goal=goal,
        precision=DEFAULT_PRECISION,
        agents=AgentSettings(proactive_interval_seconds=60),
    )


# --- parse ------------------------------------------------------------------------------------


def parse_settings(data: Mapping[str, object]) -> Settings:
    """The record from the file's TOML; raises only for a `format` it cannot trust."""
    version = data.get("format", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        shown = repr(version)[:40]
        raise DuetmlError(
            f"{SETTINGS_FILE} has a malformed setting: format = {shown} should be a whole "
            f"number (format = {FORMAT_VERSION}, without quotes): fix that line."
        )
    if version > FORMAT_VERSION:
        raise ProjectTooNewError(
            f"This project was written by a newer duetml (format {version}): "
            "upgrade with `pip install -U duetml`."
        )
    agents_table = data.get("agents")
    return Settings(
        goal=_text(data.get("goal")) or "",
        backbone=_text(data.get("backbone")) or DEFAULT_BACKBONE,
        precision=_text(data.get("precision")),
        agents=_parse_agents(agents_table if isinstance(agents_table, Mapping) else {}),
        format=version,
        other=_other(data, ("format", "goal", "backbone", "precision", "agents")),
    )


def _parse_agents(table: Mapping[str, object]) -> AgentSettings:
    other = _other(table, (*AGENTS, "proactive_enabled", INTERVAL_KEY, MAX_CONTEXT_KEY))
    choices: dict[str, AgentLLMChoice] = {}
    for agent in AGENTS:
        section = table.get(agent)
        if isinstance(section, Mapping):
            choices[agent] = _parse_llm(section)
        else:
            choices[agent] = AgentLLMChoice()
            if section is not None:
                other[agent] = section
    interval = _seconds(table.get(INTERVAL_KEY))
    if interval is None and table.get(INTERVAL_KEY) is not None:
        other[INTERVAL_KEY] = table[INTERVAL_KEY]
    cap = _whole_number(table.get(MAX_CONTEXT_KEY))
    if cap is None and table.get(MAX_CONTEXT_KEY) not in (None, ""):
        # Kept for its reader (duetml.llm.window), which says what is wrong with it.
        other[MAX_CONTEXT_KEY] = table[MAX_CONTEXT_KEY]
    return AgentSettings(
        passive=choices["passive"],
        proactive=choices["proactive"],
        proactive_enabled=bool(table.get("proactive_enabled", True)),
        proactive_interval_seconds=interval,
        max_context_tokens=cap,
        other=other,
    )


def _parse_llm(section: Mapping[str, object]) -> AgentLLMChoice:
    model = _text(section.get("model"))
    base_url = _text(section.get("base_url"))
    return AgentLLMChoice(
        provider=_text(section.get("provider")),
        model=model.strip() if model else None,
        base_url=base_url.strip() if base_url else None,
        other=_other(section, ("provider", "model", "base_url")),
    )


def _other(table: Mapping[str, object], known: tuple[str, ...]) -> dict[str, object]:
    return {str(k): v for k, v in table.items() if k not in known}


def _text(value: object) -> str | None:
    # A person may write `model = 7`; the readers always took str() of a value that is set.
    return None if value is None or value == "" or value is False else str(value)


def _seconds(value: object) -> float | None:
    """A positive finite number of seconds, else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            return None
    else:
        return None
    if not (0 < seconds and math.isfinite(seconds)):
        return None
    return value if isinstance(value, int | float) else seconds


def _whole_number(value: object) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(str(value).strip().replace("_", ""))
    except ValueError:
        return None


# --- serialise --------------------------------------------------------------------------------


def settings_to_toml(settings: Settings) -> dict[str, object]:
    """The TOML table for `settings` (unset values are absent: TOML has no null)."""
    agents = settings.agents
    agents_table: dict[str, object] = {
        "proactive_enabled": agents.proactive_enabled,
        INTERVAL_KEY: agents.proactive_interval_seconds,
        MAX_CONTEXT_KEY: agents.max_context_tokens,
        **{k: v for k, v in agents.other.items() if k not in (INTERVAL_KEY, MAX_CONTEXT_KEY)},
    }
    for key in (INTERVAL_KEY, MAX_CONTEXT_KEY):
        if agents_table[key] is None and key in agents.other:
            agents_table[key] = agents.other[key]
    for agent in AGENTS:
        choice = agents.llm(agent)
        table = {
            "provider": choice.provider,
            "model": choice.model,
            "base_url": choice.base_url,
            **choice.other,
        }
        if any(v is not None for v in table.values()):
            agents_table[agent] = table
        elif agent in agents.other:
            agents_table[agent] = agents.other[agent]
    top: dict[str, object] = {
        "format": settings.format,
        "goal": settings.goal,
        "backbone": settings.backbone,
        "precision": settings.precision,
        "agents": agents_table,
        **settings.other,
    }
    return _drop_none(top)


def _drop_none(value: dict[str, object]) -> dict[str, object]:
    return {
        k: _drop_none(dict(v)) if isinstance(v, Mapping) else v
        for k, v in value.items()
        if v is not None
    }


# --- the file ---------------------------------------------------------------------------------


def load_toml(path: Path, shown: str) -> dict[str, object]:
    """A TOML file's table, or one sentence saying how to repair the file `shown`."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DuetmlError(f"{shown} is not valid TOML ({exc}): fix or delete it.") from None
    except UnicodeDecodeError:
        raise DuetmlError(f"{shown} is not UTF-8 text: fix or delete it.") from None


def read_settings(root: Path) -> Settings:
    return parse_settings(load_toml(root / SETTINGS_FILE, SETTINGS_FILE))


def write_settings(root: Path, settings: Settings) -> None:
    atomic.write_text(root / SETTINGS_FILE, tomli_w.dumps(settings_to_toml(settings)))
