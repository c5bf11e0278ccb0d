"""Fitting one agent request into the model's context window, in a known order.

The context builder decides what a request holds within its `Budget`; when the model's window
(its context length, the user's cap, or what a server was seen to keep) is too small for it,
the request is built again with a smaller budget, step by step, until it fits:

1. older dialogue (the last 8, then 2 messages, then none);
2. smaller sheets (for models that pay per pixel: 3/4, then 1/2 of the side), then fewer
   sheets (4, 2, 1, none);
3. fewer listed categories, photos and log lines.

The system prompt, the goal and the question are never cut. If even the smallest request does
not fit, the user gets one sentence saying what to change instead of a request that would
lose its instructions.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from duetml.agents.budget import Budget
from duetml.agents.context import ContextBuilder
from duetml.agents.facts import Facts
from duetml.agents.prompts import GREETING
from duetml.errors import LLMError
from duetml.llm import ChatMessage, ImageInput
from duetml.llm.window import ImageFamily, RequestSize, estimate, fits, reply_room

T = TypeVar("T")


@dataclass(frozen=True)
class Level:
    """One step of shrinking: a smaller budget and a scale for the sheets' sides."""

    budget: Budget
    image_scale: float = 1.0


def levels(base: Budget, family: ImageFamily) -> list[Level]:
    """From the full request to the smallest one, in the order the module docstring gives."""
    sheets = (
        base.max_sheets if family.max_images is None else min(base.max_sheets, family.max_images)
    )
    steps = [Level(replace(base, max_sheets=sheets))]

    def add(scale: float | None = None, **changes: Any) -> None:
        last = steps[-1]
        steps.append(
            Level(replace(last.budget, **changes), last.image_scale if scale is None else scale)
        )

    for messages in (8, 2):
        if messages < base.history_messages:
            add(history_messages=messages, history_chars=min(base.history_chars, messages * 800))
    add(history_messages=1, history_chars=0)
    if family.by_pixels:
        add(scale=0.75)
        add(scale=0.5)
    for count in (4, 2, 1, 0):
        if count < sheets:
            add(max_sheets=count)
    add(
        categories_listed=min(base.categories_listed, 30),
        results_photos=6,
        log_events=10,
        log_chars=1000,
        facts_chars=3000,
        described_categories=10,
    )
    add(
        categories_listed=10,
        results_photos=3,
        log_events=3,
        log_chars=400,
        facts_chars=1500,
        described_categories=4,
    )
    return steps


class _OnceFacts:
    """The builder's facts gathered once for all the budgets tried for one request."""

    def __init__(self, facts: Any) -> None:
        self._facts = facts
        self._gathered: Facts | None = None

    def gather(self, budget: Budget) -> Facts:
        if self._gathered is None:
            self._gathered = self._facts.gather(budget)
        return self._gathered


def builder_with(builder: ContextBuilder, budget: Budget, facts: Any) -> ContextBuilder:
    """A builder that shares `facts` (and its cache) but builds within `budget`."""
    smaller = copy.copy(builder)
    smaller.budget = budget
    smaller.facts = facts
    return smaller


def scale_images(messages: list[ChatMessage], scale: float) -> list[ChatMessage]:
    """The messages with every image's sides scaled by `scale` (JPEG, labels kept)."""
    if scale >= 1.0:
        return messages
    from PIL import Image

    def smaller(image: ImageInput) -> ImageInput:
        with Image.open(io.BytesIO(image.data)) as opened:
            rgb = opened.convert("RGB")
        size = (max(int(rgb.width * scale), 28), max(int(rgb.height * scale), 28))
        out = io.BytesIO()
        rgb.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=85)
        return ImageInput(out.getvalue(), "image/jpeg", image.label)

    return [
        ChatMessage(m.role, m.content, [smaller(i) for i in m.images]) if m.images else m
        for m in messages
    ]


@dataclass
class Fitted:
    """The request that fits, what it holds, and what was given up for it."""

    messages: list[ChatMessage]
    size: RequestSize
    level: int
    window: int | None
    full_size: RequestSize
    full_messages: list[ChatMessage]
    extra: Any = None
    image_scale: float = 1.0
    budget: Budget | None = None

    @property
    def shrunk(self) -> bool:
        return self.level > 0

    def description(self, base: Budget) -> str:
        """What the assistant sees compared with the full request, e.g. "2 of 6 sheets"."""
        said: list[str] = []
        full_images = sum(len(m.images) for m in self.full_messages)
        images = sum(len(m.images) for m in self.messages)
        if images < full_images:
            said.append(f"{images} of {full_images} sheets")
        if self.image_scale < 1.0 and images:
            scale = {0.5: "half", 0.75: "three quarters"}.get(self.image_scale)
            said.append(
                f"at {scale} their size" if scale else f"at {self.image_scale:.0%} of their size"
            )
        budget = self.budget or base
        dropped = len(self.full_messages) - len(self.messages)  # earlier turns, as messages
        if dropped == 1 and self.full_messages[1].content == GREETING:
            dropped = 0  # only the opening question: not worth a word
        if dropped > 0:
            kept = len(self.messages) - 2  # without the system prompt and the question
            said.append(
                f"only the last {kept} of {kept + dropped} earlier messages"
                if kept
                else "none of the earlier messages"
            )
        if budget.categories_listed < base.categories_listed:
            said.append("a shorter list of categories and photos")
        return ", ".join(said) or "a shorter request"


def fit(
    build: Callable[[ContextBuilder], tuple[list[ChatMessage], T]],
    builder: ContextBuilder,
    family: ImageFamily,
    window: int | None,
    *,
    who: str,
) -> Fitted:
    """The first request of the shrinking order that fits `window` (all of it if None)."""
    facts = _OnceFacts(builder.facts)
    steps = levels(builder.budget, family)
    first_messages, first_extra = build(builder_with(builder, steps[0].budget, facts))
    first_size = estimate(first_messages, family)
    if fits(first_size, window):
        return Fitted(
            first_messages,
            first_size,
            0,
            window,
            first_size,
            first_messages,
            first_extra,
            1.0,
            steps[0].budget,
        )
    for index, step in enumerate(steps[1:], start=1):
        messages, extra = build(builder_with(builder, step.budget, facts))
        messages = scale_images(messages, step.image_scale)
        size = estimate(messages, family)
        if fits(size, window):
            return Fitted(
                messages,
                size,
                index,
                window,
                first_size,
                first_messages,
                extra,
                step.image_scale,
                step.budget,
            )
    raise LLMError(
        f"{who} has a context of only {window:,} tokens, too small for the assistant's "
        f"instructions and your question even without photos (about {size.tokens:,} tokens "
        f"+ {reply_room(window):,} for the reply): raise or remove `{_cap_hint()}`, or "
        "choose a model with a larger context."
    )


def _cap_hint() -> str:
    from duetml.llm.window import CAP_SETTING

    return f"[agents] {CAP_SETTING}"
