"""The model's context window: how big a request is, what `num_ctx` to ask, and cut prompts.

A real Ollama that gets no `options.num_ctx` uses its own default context (2,048 or 4,096
tokens) whatever the model could take, and silently drops the FRONT of a longer prompt: the
system prompt and the goal. The reply still comes with 200 OK; the only trace is
`prompt_eval_count`. So every request is sized here before it is sent, and checked after.

Text is estimated conservatively (over, never under): each digit and each non-ASCII character
as a token (Qwen and Llama tokenizers split digits), other ASCII at 3.2 characters a token
(English runs near 4), plus 8 tokens of chat template per message.

Image tokens per model family, for the JPEG contact sheets duetml sends (at most 1024 px a
side, typically 453 x 1024). Matched on Ollama's architecture, then on the model name:

| family | how an image is cut | tokens for one 453 x 1024 sheet |
|---|---|---|
| Qwen2-VL / Qwen2.5-VL (`qwen25vl`) | by pixel count: 28 px patches, at most 1,003,520 px | 594 |
| Qwen3-VL | by pixel count: 32 px patches | 450 |
| Gemma 3 (`gemma3`) | fixed: resized to 896 px, 256 tokens | 256 |
| LLaVA 1.5, llava-llama3, llava-phi3, BakLLaVA | fixed: one 336 px view, 576 tokens | 576 |
| LLaVA 1.6 (Ollama's `llava`) | a 336 px base view + up to 4 tiles, 576 each | 2,880 |
| Llama 3.2 Vision (`mllama`) | 560 px tiles, up to 4, 1,601 each; one image a message | 3,202 |
| MiniCPM-V | up to 9 slices of 64 tokens + a base view | 640 |
| GPT-4o / 4.1 (OpenAI) | 85 + 170 per 512 px tile after scaling | 425 |
| unknown | 14 px patches over the whole image (upper bound) | 2,442 |
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from duetml.errors import LLMError
from duetml.llm.types import ChatMessage, ImageInput
from duetml.settings import MAX_CONTEXT_KEY, Settings

# Room kept for the reply: advice is a few sentences, at most ~4,000 characters. A small
# window keeps a quarter for it (512 of 2,048 is still a full paragraph).
REPLY_ROOM = 1024


def reply_room(window: int | None) -> int:
    return REPLY_ROOM if window is None else min(REPLY_ROOM, window // 4)


# Template tokens per message (role markers, separators) and per request (BOS, generation cue).
MESSAGE_OVERHEAD = 8
REQUEST_OVERHEAD = 16
# num_ctx goes up in these steps: Ollama reloads the model whenever num_ctx changes, so
# requests of similar size must ask the same value.
MIN_NUM_CTX = 4096
# When a server reports no context length, assume this much (a common size for 7B models).
UNKNOWN_CONTEXT_LENGTH = 8192
# A user setting for small machines (duetml.toml `[agents] max_context_tokens`, or this env).
CAP_ENV_VAR = "DUETML_MAX_CONTEXT"
CAP_SETTING = MAX_CONTEXT_KEY
MIN_CAP = 1024


# --- image costs per family -------------------------------------------------------------------


def _patches(width: int, height: int, patch: int, max_pixels: int, min_pixels: int) -> int:
    """Qwen-style smart resize: sides rounded to `patch`, total pixels within the bounds."""
    h = max(patch, round(height / patch) * patch)
    w = max(patch, round(width / patch) * patch)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(patch, math.floor(height / beta / patch) * patch)
        w = max(patch, math.floor(width / beta / patch) * patch)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / patch) * patch
        w = math.ceil(width * beta / patch) * patch
    return (h // patch) * (w // patch) + 2  # + vision start and end markers


def _qwen2(width: int, height: int) -> int:
    return _patches(width, height, 28, 1_003_520, 3136)


def _qwen3(width: int, height: int) -> int:
    return _patches(width, height, 32, 1_310_720, 4096)


def _mllama(width: int, height: int) -> int:
    tiles = min(math.ceil(width / 560) * math.ceil(height / 560), 4)
    return tiles * 1601


def _openai_tiles(width: int, height: int) -> int:
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    if min(w, h) > 768:  # the shortest side is brought down to 768 px, never up
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _unknown(width: int, height: int) -> int:
    return max(576, math.ceil(width / 14) * math.ceil(height / 14))


@dataclass(frozen=True)
class ImageFamily:
    """How one family of vision models turns an image into context tokens."""

    name: str
    tokens: Callable[[int, int], int]
    # True when a smaller image costs fewer tokens (then shrinking sheets helps).
    by_pixels: bool = False
    max_images: int | None = None
    architectures: tuple[str, ...] = ()
    name_patterns: tuple[str, ...] = ()
    # A lower bound for a cut check: never more than the server really counts.
    floor_share: float = 0.8


FAMILIES: tuple[ImageFamily, ...] = (
    ImageFamily(
        "Qwen2.5-VL",
        _qwen2,
        by_pixels=True,
        architectures=("qwen25vl", "qwen2vl"),
        name_patterns=(r"qwen2\.?5-?vl", r"qwen2-?vl"),
    ),
    ImageFamily(
        "Qwen3-VL",
        _qwen3,
        by_pixels=True,
        architectures=("qwen3vl", "qwen3vlmoe"),
        name_patterns=(r"qwen3-?vl",),
    ),
    ImageFamily(
        "Gemma 3",
        lambda w, h: 256,
        architectures=("gemma3",),
        name_patterns=(r"gemma-?3",),
    ),
    ImageFamily(
        "LLaVA 1.5",
        lambda w, h: 576,
        name_patterns=(r"llava-?llama3", r"llava-?phi3", r"bakllava", r"llava.*1\.5"),
    ),
    ImageFamily("LLaVA 1.6", lambda w, h: 5 * 576, name_patterns=(r"llava",), floor_share=0.2),
    ImageFamily(
        "Llama 3.2 Vision",
        _mllama,
        max_images=1,
        architectures=("mllama",),
        name_patterns=(r"llama-?3\.2-?vision", r"mllama"),
        floor_share=0.0,  # cross-attention: Ollama may count the image as a single position
    ),
    ImageFamily(
        "MiniCPM-V",
        lambda w, h: 640,
        architectures=("minicpmv",),
        name_patterns=(r"minicpm-?v",),
        floor_share=0.1,
    ),
    ImageFamily(
        "GPT-4o",
        _openai_tiles,
        by_pixels=True,
        name_patterns=(r"^gpt-4o", r"^gpt-4\.1", r"^gpt-5", r"^o[134]"),
    ),
)
UNKNOWN_FAMILY = ImageFamily("unknown", _unknown, by_pixels=True, floor_share=0.05)


def family_for(model: str, architecture: str | None = None) -> ImageFamily:
    """The image-cost family of a model, from Ollama's architecture or else its name."""
    if architecture:
        for family in FAMILIES:
            if architecture.lower() in family.architectures:
                return family
    lowered = model.lower().split("/")[-1]
    for family in FAMILIES:
        if any(re.search(pattern, lowered) for pattern in family.name_patterns):
            return family
    return UNKNOWN_FAMILY


def image_size(image: ImageInput) -> tuple[int, int]:
    """Width and height from the header (cheap); a conservative 1024 x 1024 if unreadable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image.data)) as opened:
            return opened.size
    except (OSError, ValueError):
        return (1024, 1024)


# --- request size ---------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]")


def text_tokens(text: str) -> int:
    """A conservative (high) token count: see the module docstring."""
    ascii_chars = sum(1 for c in text if c < "\x80")
    digits = len(_DIGITS.findall(text))
    return digits + math.ceil((ascii_chars - digits) / 3.2) + (len(text) - ascii_chars)


def text_tokens_floor(text: str) -> int:
    """A count no tokenizer goes below for real text (used to spot a cut prompt)."""
    return len(text) // 6


@dataclass(frozen=True)
class RequestSize:
    """The estimated size of one request."""

    text_tokens: int
    image_tokens: int
    images: int
    floor: int = 0  # a lower bound of what the server must evaluate with no cache

    @property
    def tokens(self) -> int:
        return self.text_tokens + self.image_tokens


def _message_text(message: ChatMessage) -> str:
    return message.text_with_labels()


def estimate(messages: Sequence[ChatMessage], family: ImageFamily) -> RequestSize:
    text = REQUEST_OVERHEAD
    images = 0
    image_tok = 0
    floor = 0
    for message in messages:
        content = _message_text(message)
        text += text_tokens(content) + MESSAGE_OVERHEAD
        floor += text_tokens_floor(content)
        for image in message.images:
            cost = family.tokens(*image_size(image))
            images += 1
            image_tok += cost
            floor += int(cost * family.floor_share)
    return RequestSize(text, image_tok, images, floor)


def uncached_floor(
    messages: Sequence[ChatMessage], previous: Sequence[ChatMessage] | None, family: ImageFamily
) -> int:
    """What the server must count at least, even if it kept the previous request cached.

    Ollama reports the whole prompt in `prompt_eval_count`, cached tokens included (ollama
    PR 16428 restored that after 0.30 briefly counted only new ones); allowing for a cached
    prefix keeps the cut check free of false alarms on such versions too, at the price of
    noticing only clear cuts on follow-ups within one process.
    """
    previous = list(previous or [])
    floor = 0
    diverged = False
    for index, message in enumerate(messages):
        content = _message_text(message)
        before = previous[index] if index < len(previous) and not diverged else None
        if before is not None and before == message:
            continue
        if before is not None and before.role == message.role:
            old = _message_text(before)
            common = 0
            for a, b in zip(old, content, strict=False):
                if a != b:
                    break
                common += 1
            floor += text_tokens_floor(content[common:])
            same_images = [i.data for i in before.images] == [i.data for i in message.images]
        else:
            floor += text_tokens_floor(content)
            same_images = False
        if not same_images:
            for image in message.images:
                floor += int(family.tokens(*image_size(image)) * family.floor_share)
        diverged = True
    return floor


def fits(size: RequestSize, window: int | None) -> bool:
    return window is None or size.tokens + reply_room(window) <= window


def num_ctx_for(size: RequestSize, window: int, at_least: int = 0) -> int:
    """The context to ask: a power-of-two step above the need, never above `window`."""
    need = size.tokens + reply_room(window)
    step = MIN_NUM_CTX
    while step < need:
        step *= 2
    return max(min(max(step, at_least), window), min(need, window))


def user_cap(settings: Settings, env: Mapping[str, str]) -> int | None:
    """The user's limit on the context duetml asks for (for machines with little memory)."""
    raw: object = env.get(CAP_ENV_VAR)
    where = CAP_ENV_VAR
    if not raw:
        # A value that is not a number stays in `other`, for this sentence about it.
        cap = settings.agents.max_context_tokens
        raw = cap if cap is not None else settings.agents.other.get(CAP_SETTING)
        where = f"[agents] {CAP_SETTING}"
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw).strip().replace("_", ""))
    except ValueError:
        raise LLMError(
            f"{where} is '{str(raw)[:20]}', not a number of tokens: write one like 8192."
        ) from None
    if value < MIN_CAP:
        raise LLMError(f"{where} is {value}: write at least {MIN_CAP} tokens, e.g. 8192.")
    return value


# --- what one request asked and what the server said ---------------------------------------


@dataclass
class Exchange:
    """Filled in by the provider while it sends one request."""

    size: RequestSize | None = None
    num_ctx: int | None = None
    prompt_eval_count: int | None = None
    expected_floor: int | None = None
    context_length: int | None = None

    @property
    def cut(self) -> bool:
        """True when the server evidently evaluated far less than it was sent."""
        if self.prompt_eval_count is None or not self.expected_floor:
            return False
        return self.prompt_eval_count + 32 < self.expected_floor


# --- a server's refusal of an over-long request (OpenAI-compatible local servers) ----------

_OVERFLOW = re.compile(
    r"context[ _-]?(length|size|window)|maximum model length|exceed_context_size|"
    r"context the overflows|tokens to keep|too many tokens|prompt is too long",
    re.IGNORECASE,
)
_LIMITS = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),  # vLLM, OpenAI
    re.compile(r"maximum model length of (\d+)", re.IGNORECASE),  # vLLM
    re.compile(r"context length of only (\d+)", re.IGNORECASE),  # LM Studio
    re.compile(r"\bn_ctx\b\D{0,4}(\d+)", re.IGNORECASE),  # llama.cpp
    re.compile(r"context (?:size|length|window) (?:is |of )?(\d+)", re.IGNORECASE),
)


def overflow_limit(message: str, body: Mapping[str, Any] | None = None) -> tuple[bool, int | None]:
    """(is this a "context length exceeded" refusal, the server's context if it said)."""
    inner = body.get("error", body) if isinstance(body, Mapping) else None
    if isinstance(inner, Mapping):
        n_ctx = inner.get("n_ctx")
        if isinstance(n_ctx, int) and n_ctx > 0:
            return True, n_ctx
        if str(inner.get("code") or "") == "context_length_exceeded":
            message = f"{message} context length"
    if not _OVERFLOW.search(message):
        return False, None
    for pattern in _LIMITS:
        found = pattern.search(message)
        if found:
            return True, int(found.group(1))
    return True, None


# --- one request at a time per local server -------------------------------------------------


class ServerGate:
    """One request at a time to one server; passive replies go before proactive passes.

    A local server runs one model on one machine: two requests at once share its memory and
    compute (or load a second model). A waiting passive reply also makes a running proactive
    pass stop at its next piece (see `Provider.stream_chat`).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._urgent_waiting = 0

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def urgent_waiting(self) -> bool:
        return self._urgent_waiting > 0

    @contextmanager
    def hold(self, *, urgent: bool, timeout: float) -> Iterator[None]:
        with self._cond:
            if urgent:
                self._urgent_waiting += 1
            try:
                ready = self._cond.wait_for(
                    lambda: not self._busy and (urgent or self._urgent_waiting == 0), timeout
                )
            finally:
                if urgent:
                    self._urgent_waiting -= 1
            if not ready:
                raise LLMError(
                    "The model server is still busy with another request from duetml: try "
                    "again in a moment."
                )
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


_GATES: dict[str, ServerGate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(key: str) -> ServerGate:
    with _GATES_LOCK:
        return _GATES.setdefault(key, ServerGate())


# --- what this process asked each server (num_ctx must not flap: Ollama reloads) ----------


@dataclass
class ServerMemory:
    """Per server and model: the largest num_ctx asked, and the last request sent."""

    num_ctx: int = 0
    last_messages: list[ChatMessage] = field(default_factory=list)
    last_ctx: int = 0


_MEMORY: dict[tuple[str, str], ServerMemory] = {}
_MEMORY_LOCK = threading.Lock()
# A window learned from a cut prompt is trusted this long, then duetml tries the full size again
# (the user may have fixed the server in between).
LEARNED_WINDOW_SECONDS = 3600.0


def memory_for(server: str, model: str) -> ServerMemory:
    with _MEMORY_LOCK:
        return _MEMORY.setdefault((server, model), ServerMemory())
