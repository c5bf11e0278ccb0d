"""LLM providers behind one small interface: Ollama (default, local), OpenAI-compatible, none.

Importing this package is cheap: the `ollama` and `openai` clients are imported only when a
provider first talks to its server, so `duetml --help` stays instant.

    from duetml.llm import ChatMessage, get_provider
    provider = get_provider("ollama", "qwen2.5vl")
    for piece in provider.stream_chat([ChatMessage("user", "Hello")]):
        print(piece, end="")
"""

from duetml.llm.base import Provider, Timeouts
from duetml.llm.config import AgentLLMConfig, resolve_agent_config
from duetml.llm.fencing import clean_text, fence_data
from duetml.llm.privacy import display_url, is_local_url, mask_key
from duetml.llm.registry import (
    DEFAULT_MODELS,
    PROVIDERS,
    get_provider,
    parse_spec,
    provider_for,
)
from duetml.llm.types import ChatMessage, ImageInput, ModelInfo, ToolCall, ToolSpec

__all__ = [
    "DEFAULT_MODELS",
    "PROVIDERS",
    "AgentLLMConfig",
    "ChatMessage",
    "ImageInput",
    "ModelInfo",
    "Provider",
    "Timeouts",
    "ToolCall",
    "ToolSpec",
    "clean_text",
    "display_url",
    "fence_data",
    "get_provider",
    "is_local_url",
    "mask_key",
    "parse_spec",
    "provider_for",
    "resolve_agent_config",
]
