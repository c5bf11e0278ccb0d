"""Providers by name, and the "provider:model" spec users type (`ollama:llava:13b`).

A plain dict, not a plugin system: three providers do not need entry points, and a dict is
what a reader expects to find.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from duetml.errors import LLMSettingsError
from duetml.llm.base import Provider
from duetml.llm.none_provider import NoneProvider
from duetml.llm.ollama_provider import OllamaProvider
from duetml.llm.openai_provider import OpenAIProvider

if TYPE_CHECKING:
    from duetml.llm.config import AgentLLMConfig

PROVIDERS: dict[str, type[Provider]] = {
    "ollama": OllamaProvider,
    "openai": OpenAIProvider,
    "none": NoneProvider,
}

# ollama: qwen2.5vl (see OllamaProvider.default_model for why); openai: gpt-4o; none: no model.
DEFAULT_MODELS: dict[str, str | None] = {name: cls.default_model for name, cls in PROVIDERS.items()}

DEFAULT_PROVIDER = "ollama"

# Model names include "/", ":", "@", "." ("hf.co/org/Model-GGUF:Q4_K_M", "ft:gpt-4o:org::id");
# whitespace and control characters are never part of one and would corrupt a settings file.
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:/@+\-]{0,199}"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def _choices() -> str:
    return ", ".join(PROVIDERS)


def check_provider_name(name: str) -> str:
    """The canonical provider name, or an LLMError listing the known ones."""
    canonical = name.strip().lower()
    if canonical not in PROVIDERS:
        raise LLMSettingsError(
            f"Unknown LLM provider '{name.strip()[:40]}': choose one of {_choices()}."
        )
    return canonical


def check_model_name(model: str) -> str:
    if not _MODEL_NAME.fullmatch(model):
        raise LLMSettingsError(
            f"'{model[:60]}' is not a valid model name: use letters, digits and . _ - : / @ "
            "only, like `qwen2.5vl` or `gpt-4o`."
        )
    return model


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split "provider[:model]" on the first colon: "ollama:llava:13b" -> ("ollama", "llava:13b").

    A missing model means the provider's default; "none" alone is valid and has no model.
    """
    provider_part, _, model_part = spec.strip().partition(":")
    provider = check_provider_name(provider_part)
    if provider == "none":
        if model_part:
            raise LLMSettingsError("The 'none' provider takes no model: write just `none`.")
        return provider, None
    if not model_part:
        return provider, DEFAULT_MODELS[provider]
    return provider, check_model_name(model_part)


def get_provider(name: str, model: str | None = None, **kwargs: Any) -> Provider:
    """A ready provider; `kwargs` go to its constructor (base_url, api_key, timeout, ...)."""
    provider = check_provider_name(name)
    if model is not None:
        check_model_name(model)
    return PROVIDERS[provider](model, **kwargs)


def provider_for(config: AgentLLMConfig, **kwargs: Any) -> Provider:
    """The provider an agent's resolved configuration asks for."""
    kwargs.setdefault("agent", config.agent)
    return get_provider(config.provider, config.model, base_url=config.base_url, **kwargs)
