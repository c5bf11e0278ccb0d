"""(D)-(G) the chat region, around `duetml.agents.AgentSession`. Absent in baseline mode.

Replies stream as NDJSON lines (`{"delta": ...}` ... then `{"done": true}` or `{"error": ...}`)
so a failure half-way through still reaches the page as one sentence, after a 200 has gone out;
`{"notice": ...}` lines carry one-time notes (e.g. the model's context is small).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from litestar import Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, KwargDefinition, QueryParameter
from litestar.response import Stream

from duetml.errors import DuetmlError, NotFoundError, page_wording
from duetml.web.errors import AGENT_ERROR_RESPONSES, GENERIC_500, for_page, scrub
from duetml.web.payloads import AgentsInfo, Applied, ChatLine, Conversation
from duetml.web.state import InjectedWebState, WebState

if TYPE_CHECKING:
    from duetml.agents import AgentSession

log = logging.getLogger("duetml.web")

MAX_MESSAGE_CHARS = 4000
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")


@dataclass
class ChatRequest:
    message: Annotated[
        str,
        KwargDefinition(
            pattern=r"\S",
            max_length=MAX_MESSAGE_CHARS,
            description="What the user says; the ask buttons send their question too.",
        ),
    ]
    about: Annotated[
        Literal["chat", "data", "results"],
        KwargDefinition(description="Which part of the page the question is about."),
    ] = "chat"


@dataclass
class ProactiveSwitch:
    enabled: bool


@dataclass
class ProposalChoice:
    proposal: Annotated[
        str,
        KwargDefinition(
            min_length=1,
            max_length=40,
            pattern=r"^#?[0-9a-f]+$",
            description="The id (or number) of a proposal in the conversation.",
        ),
    ]


@dataclass
class CloudConsent:
    endpoint: Annotated[str, KwargDefinition(min_length=1, max_length=500)]


def public_description(value: Any) -> Any:
    """`describe()` minus anything that looks like a credential, even a masked one."""
    if isinstance(value, dict):
        return {
            k: public_description(v)
            for k, v in value.items()
            if not any(word in str(k).lower() for word in _SECRET_WORDS)
        }
    if isinstance(value, list):
        return [public_description(v) for v in value]
    if isinstance(value, str):  # errors written for the shell too: say what to click
        return page_wording(value)
    return value


def _line(line: ChatLine) -> str:
    return json.dumps(line) + "\n"


def _session(web: WebState) -> AgentSession:
    """The agent session, or the sentence saying why there is none."""
    if web.agents is None:
        raise DuetmlError(web.agents_problem or "The assistant is not available.")
    return web.agents


def describe(web: WebState, fresh: bool = False) -> AgentsInfo:
    session = web.agents
    info = public_description(session.describe()) if session is not None else {}
    roots = (web.project.root,)
    for agent in ("passive", "proactive"):
        entry = info.get(agent) if isinstance(info, dict) else None
        if isinstance(entry, dict):
            reachable, problem = web.reachable(agent, fresh=fresh)
            entry["reachable"] = reachable
            entry["unreachable"] = scrub(page_wording(problem), roots) if problem else None
    return AgentsInfo(
        available=session is not None,
        problem=web.agents_problem,
        agents=info,
        proactive_enabled=bool(session.proactive_enabled) if session else False,
        proactive_interval=float(session.proactive_interval) if session else None,
        proactive_error=web.proactive_error,
        proactive_paused=web.proactive_paused,
        consent_needed=info.get("consent_needed", []) if isinstance(info, dict) else [],
    )


@get(
    "/api/agents",
    responses=AGENT_ERROR_RESPONSES,
    sync_to_thread=True,
    summary="Which provider and model each agent uses",
)
def agents_info(
    web: InjectedWebState,
    fresh: Annotated[
        bool,
        QueryParameter(description="Ask the LLM servers now, not a recent answer (Check again)."),
    ] = False,
) -> AgentsInfo:
    return describe(web, fresh=fresh)


@get(
    "/api/conversation",
    responses=AGENT_ERROR_RESPONSES,
    sync_to_thread=True,
    summary="The conversation so far",
)
def conversation(web: InjectedWebState) -> Response[Conversation]:
    messages = web.agents.conversation() if web.agents is not None else []
    return Response(Conversation(messages), headers={"Cache-Control": "no-store"})


@post(
    "/api/chat",
    # The annotation (a Stream) cannot say what the lines hold: each is one ChatLine.
    responses={
        200: ResponseSpec(
            data_container=ChatLine,
            media_type="application/x-ndjson",
            description="The reply, one JSON object per line.",
            generate_examples=False,
        ),
        **AGENT_ERROR_RESPONSES,
    },
    sync_to_thread=True,
    status_code=200,
    summary="Ask the passive agent; the reply streams as NDJSON lines",
    media_type="application/x-ndjson",
)
def chat(web: InjectedWebState, data: JSONBody[ChatRequest]) -> Stream:
    session = _session(web)
    message = data.message.strip()
    if not message:
        raise DuetmlError("Type a message for the assistant first.")
    if len(message) > MAX_MESSAGE_CHARS:
        raise DuetmlError(f"The message is too long: keep it under {MAX_MESSAGE_CHARS} characters.")

    # Argument, settings and consent problems are raised here, as a plain error response;
    # failures of the LLM itself arrive while streaming, as the last line.
    pieces = session.ask_stream(message, about=data.about)
    roots = (web.project.root,)

    def notices() -> Iterator[str]:
        # One-time notes, e.g. the model's context is small, or a server cut the request.
        for notice in session.pop_notices():
            yield _line({"notice": scrub(notice, roots)})

    def lines() -> Iterator[str]:
        try:
            for piece in pieces:
                yield from notices()
                yield _line({"delta": piece})
            yield from notices()
            yield _line({"done": True})
        except DuetmlError as exc:  # LLMError above all: one sentence saying what to do
            yield from notices()
            yield _line({"error": for_page(exc, roots)})
        except Exception:
            log.exception("the assistant failed")
            yield _line({"error": GENERIC_500})
        finally:
            web.changed()

    return Stream(
        lines(),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@post(
    "/api/agents/proactive",
    responses=AGENT_ERROR_RESPONSES,
    status_code=200,
    summary="Turn the proactive agent on or off",
)
async def switch_proactive(
    web: InjectedWebState, request: Request[Any, Any, Any], data: JSONBody[ProactiveSwitch]
) -> AgentsInfo:
    # Litestar would take 0 or "" for false; a switch is true or false, nothing else.
    raw = await request.json()
    if not isinstance(raw, dict) or not isinstance(raw.get("enabled"), bool):
        raise DuetmlError('Send {"enabled": true} or {"enabled": false}.')
    return await sync_to_thread(_switch, web, data.enabled)


def _switch(web: WebState, enabled: bool) -> AgentsInfo:
    session = _session(web)
    session.set_proactive_enabled(enabled)
    if enabled and not web.wake_proactive():
        # No timer running (tests without a lifespan): look once now, in the background.
        threading.Thread(target=_proactive_now, args=(web, session), daemon=True).start()
    web.changed()
    return describe(web)


@post(
    "/api/agents/consent",
    responses=AGENT_ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Approve an endpoint the agents wait for (off this machine, or chosen by the "
    "project's file), for this project and this user",
)
def allow_cloud(web: InjectedWebState, data: JSONBody[CloudConsent]) -> AgentsInfo:
    session = _session(web)
    needed = [n.get("endpoint") for n in session.consent_needed()]
    if data.endpoint not in needed:
        raise NotFoundError("That endpoint is not waiting for your consent: reload the page.")
    session.allow_cloud(data.endpoint)  # kept in the user's own settings, not the project
    web.changed()
    web.wake_proactive()  # it waited for this approval; it may look now
    return describe(web)


@post(
    "/api/proposals/apply",
    responses=AGENT_ERROR_RESPONSES,
    sync_to_thread=True,
    status_code=200,
    summary="Apply a change an agent proposed, as one undoable operation",
)
def apply_proposal(web: InjectedWebState, data: JSONBody[ProposalChoice]) -> Applied:
    # Only on the user's click: the page posts here from the proposal's button.
    session = _session(web)
    try:
        result = session.apply_proposal(data.proposal)
    finally:
        web.changed()
    return Applied(scrub(result, (web.project.root,)))


# The handlers take the server's WebState as `web`, injected by create_app (Litestar's Provide).
AGENT_ROUTES = [agents_info, conversation, chat, switch_proactive, allow_cloud, apply_proposal]


def _proactive_now(web: WebState, session: AgentSession) -> None:
    try:
        if session.proactive_pass() is None:
            return
        web.proactive_error = None
    except DuetmlError as exc:
        web.proactive_error = for_page(exc, (web.project.root,))
    except Exception:
        log.exception("the proactive agent failed")
    finally:
        web.changed()
