"""The two agents beside the user: a passive one that answers, a proactive one that speaks up.

    from duetml.agents import AgentSession, ProactiveTimer
    session = AgentSession(project)                 # providers from the project's settings
    for piece in session.ask_stream("What should my categories be?"):
        print(piece, end="")
    with ProactiveTimer(session, on_advice=print):  # a look every proactive_interval seconds
        ...

Modules: `session` (AgentSession, on `providers` (which LLM, readiness, consent) and
`notices` (one-time notices for the user)), `context` (what the agents see, built from `facts`,
`history` and `attachments` within the `budget`), `sheets` (contact sheets), `passive`,
`proactive` (its look, signature and sentinel, ProactiveTimer), `conversation` (saved in
`.duetml/conversation.jsonl`), `choice` (which LLM, consent), `prompts`. Importing this package
imports no LLM client and no numpy.
"""

from duetml.agents.choice import CloudConsentRequired
from duetml.agents.context import DEFAULT_BUDGET, AgentContext, Budget, ContextBuilder
from duetml.agents.proactive import ProactiveTimer
from duetml.agents.prompts import GREETING, NOTHING_TO_ADD
from duetml.agents.session import AgentSession

__all__ = [
    "DEFAULT_BUDGET",
    "GREETING",
    "NOTHING_TO_ADD",
    "AgentContext",
    "AgentSession",
    "Budget",
    "CloudConsentRequired",
    "ContextBuilder",
    "ProactiveTimer",
]
