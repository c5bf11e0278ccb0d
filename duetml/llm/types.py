"""Value types shared by every provider: one image type, one message type, one model record.

Each provider encodes these for its own API (base64 list for Ollama, data URLs for OpenAI),
so callers never care which provider is behind an agent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, get_args

from duetml.llm.fencing import clean_text, fence_data

Role = Literal["system", "user", "assistant"]
ROLES: frozenset[str] = frozenset(get_args(Role))

IMAGE_MIME_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png"})

_MAGIC: dict[str, bytes] = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}

# A file name or category name longer than this says nothing more useful to a model.
MAX_LABEL_CHARS = 200


def sniff_image_mime(data: bytes) -> str | None:
    """The MIME type from the magic bytes, or None when the bytes are neither JPEG nor PNG."""
    for mime, magic in _MAGIC.items():
        if data.startswith(magic):
            return mime
    return None


@dataclass(frozen=True, repr=False)
class ImageInput:
    """One JPEG or PNG image for a model; `label` (file or category name) is untrusted text."""

    data: bytes
    mime: str
    label: str | None = None

    def __post_init__(self) -> None:
        # Providers send the bytes with this type; a PNG labelled JPEG confuses some servers.
        if self.mime not in IMAGE_MIME_TYPES:
            raise ValueError(f"images must be one of {sorted(IMAGE_MIME_TYPES)}, not {self.mime!r}")
        if sniff_image_mime(self.data) != self.mime:
            raise ValueError(f"the image bytes are not {self.mime}")

    @classmethod
    def from_bytes(cls, data: bytes, label: str | None = None) -> ImageInput:
        mime = sniff_image_mime(data)
        if mime is None:
            raise ValueError("the image bytes are neither JPEG nor PNG")
        return cls(data=data, mime=mime, label=label)

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"

    def __repr__(self) -> str:
        # The bytes would flood logs and tracebacks; their size is what helps debugging.
        return f"ImageInput(mime={self.mime!r}, bytes={len(self.data)}, label={self.label!r})"


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    images: list[ImageInput] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {sorted(ROLES)}, not {self.role!r}")
        # OpenAI accepts images only from the user; holding every provider to that keeps
        # a conversation portable between providers.
        if self.images and self.role != "user":
            raise ValueError("only user messages can carry images")

    def text_with_labels(self) -> str:
        """The content, plus the images' labels in a fenced block when any image has one."""
        labels = [
            f"Image {index}: {clean_text(image.label, max_chars=MAX_LABEL_CHARS, one_line=True)}"
            for index, image in enumerate(self.images, start=1)
            if image.label
        ]
        if not labels:
            return self.content
        block = fence_data("\n".join(labels), title="labels of the attached images, in order")
        return f"{self.content}\n\n{block}" if self.content else block


class ProviderInfo(TypedDict):
    """`Provider.describe()`: what may be shown or logged (no credentials)."""

    provider: str
    model: str | None
    endpoint: str | None  # without user, password or query
    is_local: bool
    key: str | None  # masked: "sk-…cdef"


@dataclass(frozen=True)
class MemoryUse:
    """Bytes a local model takes: loaded (with its context), else its file; None if unknown."""

    bytes: int | None
    loaded: bool
    context_length: int | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What duetml knows about a model; `vision`/`tools` are None when the server cannot tell."""

    name: str
    installed: bool
    vision: bool | None
    tools: bool | None = None


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: a name, a sentence for the model, a JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    def as_openai(self) -> dict[str, Any]:
        """The `tools` entry both the OpenAI and the Ollama chat APIs take."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for. Untrusted: the caller validates the arguments."""

    name: str
    arguments: dict[str, Any]


def parse_tool_arguments(raw: object) -> dict[str, Any]:
    """A tool call's arguments as a dict: OpenAI sends a JSON string, Ollama an object.

    Anything unreadable becomes {} (the caller's validation then says what is missing), so a
    model's broken JSON never fails the whole answer.
    """
    import json

    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return {}
    return dict(raw) if isinstance(raw, dict) else {}
