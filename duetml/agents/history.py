"""What happened so far: the user's operations (the interaction log) and the dialogue.

As in the paper, each request carries the log of the user's operations and the dialogue. Both are
cut to the budget, keeping the newest, which matter most.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duetml.agents import prompts
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.agents.conversation import Message
from duetml.agents.facts import ago, short
from duetml.llm import ChatMessage, clean_text


def is_agent_event(event: dict[str, Any]) -> bool:
    """Events the agents themselves caused: not a change in what the user is doing."""
    return str(event.get("event", "")).startswith("agent_") or event.get("by") == "agent"


# --- the interaction log --------------------------------------------------------------------

_SKIP_KEYS = {"ts", "event", "source", "by"}


def summarize_events(events: Sequence[dict[str, Any]], budget: Budget = DEFAULT_BUDGET) -> str:
    """One short line per recent user operation, newest last; agent events left out."""
    lines = []
    for event in [e for e in events if not is_agent_event(e)][-budget.log_events :]:
        details = []
        for key, value in event.items():
            if key in _SKIP_KEYS:
                continue
            if isinstance(value, list):
                shown = ", ".join(str(v) for v in value[:3])
                value = f"[{shown}{', ...' if len(value) > 3 else ''}] ({len(value)})"
            details.append(f"{key}={value}")
        text = f"{ago(event.get('ts'))}: {event.get('event', '?')} {' '.join(details)}"
        lines.append(short(text, 200))
    text = "\n".join(lines)
    if len(text) > budget.log_chars:  # keep the newest events, which matter most
        text = "…" + text[-(budget.log_chars - 1) :]
    return text


def collapse_events(events: Sequence[dict[str, Any]]) -> str:
    """Older user operations in one line per kind: "init; add_images x100: 5,233 photos into
    100 categories; train x2 (last: 93.1% cross-validated)"."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if not is_agent_event(event):
            kinds.setdefault(str(event.get("event", "?")), []).append(event)
    parts = []
    for kind, group in kinds.items():
        head = kind if len(group) == 1 else f"{kind} x{len(group)}"
        parts.append(head + _collapsed_detail(kind, group))
    return "; ".join(parts)


def _collapsed_detail(kind: str, group: list[dict[str, Any]]) -> str:
    def number(value: object) -> int:
        return value if isinstance(value, int) else len(value) if isinstance(value, list) else 0

    if kind == "add_images":
        added = sum(number(e.get("added")) for e in group)
        into = {str(e.get("category")) for e in group if e.get("category")}
        return f": {added:,} photos into {len(into):,} categories"
    if kind in ("move_images", "remove_images"):
        return f": {sum(number(e.get('images')) for e in group):,} photos"
    if kind == "train":
        accuracy = group[-1].get("cv_accuracy")
        if isinstance(accuracy, (int, float)):
            return f" (last: {accuracy:.1%} cross-validated)"
    if kind in ("rename_category", "add_category", "remove_category", "merge_categories"):
        names = [str(e.get("new") or e.get("category") or e.get("target") or "") for e in group]
        return ": " + ", ".join(short(n, 40) for n in names[-5:] if n)
    return ""


def split_events(
    events: Sequence[dict[str, Any]], since: float | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(older, new): the user's operations before and after `since` (a time stamp)."""
    mine = [e for e in events if not is_agent_event(e)]
    if since is None:
        return [], mine
    older = [e for e in mine if float(e.get("ts") or 0) <= since]
    return older, [e for e in mine if float(e.get("ts") or 0) > since]


# --- the dialogue ---------------------------------------------------------------------------


def _turn_text(message: Message, budget: Budget) -> str | None:
    kind, content = (
        message.get("kind"),
        clean_text(str(message.get("content", "")), max_chars=budget.message_chars),
    )
    if kind == "error":
        return None
    if kind in prompts.EMPTY_ASK_TEXT and message.get("role") == "user":
        label = prompts.EMPTY_ASK_TEXT[kind]
        return f"{label} {content}".strip() if content else label
    proposed = _proposed(message)
    if kind == "proactive":
        return prompts.PROACTIVE_PREFIX + content + proposed
    return content + proposed


def _proposed(message: Message) -> str:
    """The proposals an assistant turn carried, and which the user applied."""
    proposals = message.get("proposals")
    if not isinstance(proposals, list) or not proposals:
        return ""
    items = [
        short(p.get("label", ""), 120) + (" - applied" if p.get("applied") else "")
        for p in proposals
        if isinstance(p, dict)
    ]
    return f"\n{prompts.PROPOSED_PREFIX} {'; '.join(items)})"


def _bounded_tail(messages: Sequence[Message], budget: Budget) -> list[tuple[str, str]]:
    turns: list[tuple[str, str]] = [
        (m["role"], t) for m in messages if (t := _turn_text(m, budget))
    ]
    turns = turns[-budget.history_messages :]
    while turns and sum(len(t) for _, t in turns) > budget.history_chars:
        turns.pop(0)
    return turns


def history_messages(
    conversation: Sequence[Message], budget: Budget = DEFAULT_BUDGET
) -> list[ChatMessage]:
    """The saved dialogue as chat turns for the passive agent, newest kept when cut."""
    return [ChatMessage(role, text) for role, text in _bounded_tail(conversation, budget)]  # type: ignore[arg-type]


def render_transcript(conversation: Sequence[Message], budget: Budget = DEFAULT_BUDGET) -> str:
    """The dialogue as text, for the proactive agent, which reads it as data."""
    names = {"user": "User", "assistant": "Assistant"}
    return "\n\n".join(
        f"{names[role]}: {text}" for role, text in _bounded_tail(conversation, budget)
    )
