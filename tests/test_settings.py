"""duetml.toml as a typed record: old files load, a rewrite loses nothing, readers get types."""

from __future__ import annotations

import tomllib
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from duetml.settings import (
    AgentLLMChoice,
    Settings,
    default_settings,
    parse_settings,
    read_settings,
    settings_to_toml,
    write_settings,
)

# What duetml 0.1 wrote, plus what people add by hand: an unknown key at each level, a
# pre-0.2 `cloud_consent` list, and values of the wrong shape for two settings.
OLD_FILE = """\
format = 1
goal = "Sort my clothes"
backbone = "mobilenet-v3-small"
theme = "dark"

[agents]
proactive_enabled = false
proactive_interval_seconds = "soon"
max_context_tokens = "lots"
cloud_consent = ["https://api.openai.com/v1"]

[agents.passive]
provider = "ollama"
model = " llava:13b "
base_url = "http://192.168.1.5:11434"
temperature = 0.2
"""


def test_an_old_file_loads_into_typed_fields(tmp_path: Path) -> None:
    (tmp_path / "duetml.toml").write_text(OLD_FILE)
    settings = read_settings(tmp_path)
    assert (settings.goal, settings.backbone, settings.format) == (
        "Sort my clothes",
        "mobilenet-v3-small",
        1,
    )
    agents = settings.agents
    assert agents.proactive_enabled is False
    assert agents.passive == AgentLLMChoice(
        "ollama", "llava:13b", "http://192.168.1.5:11434", {"temperature": 0.2}
    )
    assert agents.proactive == AgentLLMChoice()
    # Wrong shapes leave the typed field unset and are kept for whoever reports them.
    assert agents.proactive_interval_seconds is None and agents.max_context_tokens is None
    assert agents.other["max_context_tokens"] == "lots"
    assert settings.other == {"theme": "dark"}
    with pytest.raises(FrozenInstanceError):
        settings.goal = "x"  # type: ignore[misc]


def test_a_rewrite_keeps_what_duetml_does_not_use(tmp_path: Path) -> None:
    (tmp_path / "duetml.toml").write_text(OLD_FILE)
    write_settings(tmp_path, replace(read_settings(tmp_path), goal="Sort my shoes"))
    on_disk = tomllib.loads((tmp_path / "duetml.toml").read_text())
    before = tomllib.loads(OLD_FILE)
    before["goal"] = "Sort my shoes"
    before["agents"]["passive"]["model"] = "llava:13b"  # the only change: stripped
    assert on_disk == before


def test_a_file_with_only_a_format_gets_the_defaults() -> None:
    settings = parse_settings({"format": 1})
    assert settings == Settings() and settings.backbone == "efficientnet-lite0"
    assert settings.agents.proactive_enabled is True
    assert settings_to_toml(settings) == {
        "format": 1,
        "goal": "",
        "backbone": "efficientnet-lite0",
        "agents": {"proactive_enabled": True},
    }


def test_the_new_project_file_round_trips(tmp_path: Path) -> None:
    write_settings(tmp_path, default_settings("Edible or not"))
    assert read_settings(tmp_path) == default_settings("Edible or not")
    assert read_settings(tmp_path).agents.proactive_interval_seconds == 60


def test_choosing_an_llm_leaves_the_other_agent_alone() -> None:
    settings = parse_settings(tomllib.loads(OLD_FILE))
    chosen = settings.with_agents(lambda a: a.with_llm("proactive", AgentLLMChoice("none")))
    assert chosen.agents.proactive.provider == "none"
    assert chosen.agents.passive == settings.agents.passive
    with pytest.raises(ValueError, match="agent must be one of"):
        settings.agents.with_llm("robot", AgentLLMChoice("none"))
