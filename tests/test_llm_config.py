"""Provider registry, "provider:model" specs, per-agent configuration, and import cost."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from duetml.errors import LLMError
from duetml.llm import DEFAULT_MODELS, PROVIDERS, get_provider, parse_spec, provider_for
from duetml.llm.config import resolve_agent_config
from duetml.llm.none_provider import NoneProvider
from duetml.llm.ollama_provider import OllamaProvider
from duetml.llm.openai_provider import OpenAIProvider
from duetml.llm.types import ChatMessage
from duetml.settings import Settings, parse_settings


def settings(**agents: dict[str, Any]) -> Settings:
    return parse_settings({"agents": agents})


NO_SETTINGS = Settings()


# --- registry ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ollama:llava:13b", ("ollama", "llava:13b")),
        ("ollama", ("ollama", "qwen2.5vl")),
        ("OpenAI:gpt-4o", ("openai", "gpt-4o")),
        ("openai:ft:gpt-4o-mini:acme::abc123", ("openai", "ft:gpt-4o-mini:acme::abc123")),
        (
            "ollama:hf.co/bartowski/Qwen2-VL-7B-GGUF:Q4_K_M",
            ("ollama", "hf.co/bartowski/Qwen2-VL-7B-GGUF:Q4_K_M"),
        ),
        ("none", ("none", None)),
        (" none ", ("none", None)),
    ],
)
def test_parse_spec(spec: str, expected: tuple[str, str | None]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["bogus:x", "", "none:llava", "ollama:bad name", "ollama:-x"])
def test_parse_spec_rejects_with_one_sentence(spec: str) -> None:
    with pytest.raises(LLMError) as info:
        parse_spec(spec)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


def test_registry_is_a_plain_dict_with_capabilities_as_attributes() -> None:
    assert PROVIDERS == {"ollama": OllamaProvider, "openai": OpenAIProvider, "none": NoneProvider}
    assert DEFAULT_MODELS == {"ollama": "qwen2.5vl", "openai": "gpt-4o", "none": None}
    assert OpenAIProvider.needs_key and OpenAIProvider.key_env_var == "OPENAI_API_KEY"
    assert not OllamaProvider.needs_key
    assert NoneProvider.enabled is False and OllamaProvider.enabled is True


def test_get_provider_defaults_and_unknown_name() -> None:
    provider = get_provider("ollama", env={})
    assert isinstance(provider, OllamaProvider) and provider.model == "qwen2.5vl"
    assert provider.describe() == {
        "provider": "ollama",
        "model": "qwen2.5vl",
        "endpoint": "http://127.0.0.1:11434",
        "is_local": True,
        "key": None,
    }
    with pytest.raises(LLMError, match="choose one of ollama, openai, none"):
        get_provider("claude")


def test_none_provider_says_how_to_switch_on() -> None:
    provider = get_provider("none", agent="proactive")
    with pytest.raises(LLMError) as info:
        provider.chat([ChatMessage("user", "hi")])
    assert str(info.value) == (
        "The assistant is switched off for this agent: choose a provider with "
        "`duetml llm use proactive ollama:qwen2.5vl`."
    )
    assert provider.list_models() == [] and provider.is_local()
    assert provider.describe()["endpoint"] is None


def test_env_supplies_endpoints_and_keys() -> None:
    env = {
        "OLLAMA_HOST": "10.0.0.7",
        "OPENAI_BASE_URL": "http://127.0.0.1:1234/v1/",
        "OPENAI_API_KEY": "sk-envkey-0123456789abcdef",
    }
    ollama = get_provider("ollama", env=env)
    assert ollama.base_url == "http://10.0.0.7:11434" and not ollama.is_local()
    openai = get_provider("openai", env=env)
    assert openai.base_url == "http://127.0.0.1:1234/v1" and openai.is_local()
    assert openai.describe()["key"] == "sk-…cdef"
    remote = get_provider("openai", env={})
    assert remote.base_url == "https://api.openai.com/v1" and not remote.is_local()


# --- resolve_agent_config ------------------------------------------------------------------


def test_default_is_local_ollama() -> None:
    config = resolve_agent_config("passive", NO_SETTINGS, NO_SETTINGS, {})
    assert (config.provider, config.model, config.base_url, config.source) == (
        "ollama",
        "qwen2.5vl",
        None,
        "default",
    )
    assert config.spec == "ollama:qwen2.5vl"


def test_precedence_env_over_project_over_user() -> None:
    user = settings(passive={"provider": "openai", "model": "gpt-4o-mini"})
    project = settings(
        passive={"provider": "ollama", "model": "llava:13b", "base_url": "http://192.168.1.5:11434"}
    )
    assert resolve_agent_config("passive", NO_SETTINGS, user, {}).spec == "openai:gpt-4o-mini"
    from_project = resolve_agent_config("passive", project, user, {})
    assert from_project.spec == "ollama:llava:13b" and from_project.source == "project"
    assert from_project.base_url == "http://192.168.1.5:11434"
    from_env = resolve_agent_config("passive", project, user, {"DUETML_PASSIVE_LLM": "none"})
    assert (from_env.provider, from_env.model, from_env.source) == ("none", None, "env")


def test_agents_are_resolved_independently() -> None:
    project = settings(passive={"provider": "none"}, proactive={"provider": "openai"})
    env = {"DUETML_PROACTIVE_LLM": "ollama:gemma3"}
    assert resolve_agent_config("passive", project, NO_SETTINGS, env).spec == "none"
    assert resolve_agent_config("proactive", project, NO_SETTINGS, env).spec == "ollama:gemma3"
    assert resolve_agent_config("proactive", project, NO_SETTINGS, {}).spec == "openai:gpt-4o"


def test_env_keeps_the_base_url_configured_for_the_same_provider() -> None:
    # Overriding only the model of a LAN server must not silently send photos to the cloud.
    project = settings(
        passive={
            "provider": "openai",
            "model": "qwen2.5-vl",
            "base_url": "http://127.0.0.1:1234/v1",
        }
    )
    same = resolve_agent_config(
        "passive", project, NO_SETTINGS, {"DUETML_PASSIVE_LLM": "openai:llava"}
    )
    assert same.base_url == "http://127.0.0.1:1234/v1" and same.model == "llava"
    other = resolve_agent_config("passive", project, NO_SETTINGS, {"DUETML_PASSIVE_LLM": "ollama"})
    assert other.base_url is None and other.model == "qwen2.5vl"


def test_levels_are_not_mixed() -> None:
    user = settings(passive={"provider": "ollama", "model": "llava"})
    project = settings(passive={"provider": "openai"})  # no model: openai's default, not llava
    assert resolve_agent_config("passive", project, user, {}).spec == "openai:gpt-4o"
    model_only = settings(passive={"model": "llava"})  # names no provider: does not count
    assert resolve_agent_config("passive", model_only, user, {}).source == "user"


@pytest.mark.parametrize("field", ["api_key", "API_KEY", "token"])
def test_keys_in_settings_are_refused(field: str) -> None:
    project = settings(passive={"provider": "openai", field: "sk-should-not-be-here-1234"})
    with pytest.raises(LLMError) as info:
        resolve_agent_config("passive", project, NO_SETTINGS, {})
    assert "sk-should-not-be-here" not in str(info.value)
    assert "environment" in str(info.value)


@pytest.mark.parametrize(
    "base_url", ["ftp://host", "not a url", "http://user:pw@127.0.0.1:1234/v1", "javascript:x"]
)
def test_bad_base_urls_are_refused(base_url: str) -> None:
    project = settings(passive={"provider": "openai", "base_url": base_url})
    with pytest.raises(LLMError) as info:
        resolve_agent_config("passive", project, NO_SETTINGS, {})
    assert "user:pw" not in str(info.value) and str(info.value).endswith(".")


def test_unknown_provider_in_env_is_one_sentence() -> None:
    with pytest.raises(LLMError, match=r"^Unknown LLM provider 'gemini': choose one of"):
        resolve_agent_config(
            "passive", NO_SETTINGS, NO_SETTINGS, {"DUETML_PASSIVE_LLM": "gemini:pro"}
        )


def test_provider_for_builds_the_configured_provider() -> None:
    project = settings(
        proactive={"provider": "openai", "model": "llava", "base_url": "http://127.0.0.1:1234/v1"}
    )
    config = resolve_agent_config("proactive", project, NO_SETTINGS, {})
    provider = provider_for(config, env={})
    assert isinstance(provider, OpenAIProvider)
    assert provider.model == "llava" and provider.base_url == "http://127.0.0.1:1234/v1"
    assert provider.use_hint("none") == "`duetml llm use proactive none`"


# --- import cost ---------------------------------------------------------------------------


def test_importing_and_building_providers_does_not_import_clients() -> None:
    code = (
        "import sys, duetml.llm as llm\n"
        "p = llm.get_provider('openai', env={}); p.describe(); repr(p)\n"
        "llm.get_provider('ollama', env={}).is_local()\n"
        "heavy = [m for m in ('ollama', 'openai', 'httpx', 'httpx2', 'pydantic') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
