"""The proactive agent: looks at the project now and then and speaks up only with news.

A look is cheap when nothing changed: the state signature (data fingerprint, categories with
test photos, goal, dialogue length, the user's last operation, the model file) is compared with
the one of the last look before anything is sent. When it did change, the model is asked and
may answer `NOTHING_TO_ADD`, which is never shown. Passes never overlap: a thread lock within a
process, a lock file (`.duetml/proactive.lock`) across processes, and a busy pass is skipped,
not queued.

It is situated: its request lists what the user did since its last look, with the older
operations collapsed into one line; the timer holds it back while a reply is being written and
for a few seconds after, and (for a while) until the opening question is answered; advice
whose words mostly repeat advice already shown is dropped (`is_repeat`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Self

from duetml.agents import prompts
from duetml.agents.context import AgentContext, ContextBuilder, is_agent_event
from duetml.agents.conversation import Message
from duetml.errors import DuetmlError
from duetml.llm import ChatMessage, Provider, clean_text
from duetml.llm.base import PreemptedError

if TYPE_CHECKING:
    from duetml.agents.session import AgentSession
    from duetml.project import Project

log = logging.getLogger("duetml.agents")

LOCK_FILE = "proactive.lock"
MAX_ADVICE_CHARS = 4_000
RECHECK_SECONDS = 1.0  # how soon a look that had to wait is tried again
# Kinds the proactive agent's own speech adds: they must not count as the user doing something.
_NOT_USER_ACTIVITY = {"proactive", "error"}
_SENTINEL = re.compile(r"NOTHING[\s_-]*TO[\s_-]*ADD", re.IGNORECASE)


def state_signature(project: Project, conversation: Sequence[Message]) -> str:
    """Changes when anything the proactive agent should look at again changes."""
    from duetml.prediction import model_path

    last_event = next(
        (e.get("ts") for e in reversed(project.log.recent(limit=200)) if not is_agent_event(e)),
        None,
    )
    try:
        stat = model_path(project).stat()
        model_state: Any = [stat.st_mtime_ns, stat.st_size]
    except OSError:
        model_state = None
    parts = {
        "fingerprint": project.fingerprint(),
        "categories": [[c.name, c.count, c.test_count] for c in project.categories()],
        "goal": project.goal,
        "dialogue": sum(1 for m in conversation if m.get("kind") not in _NOT_USER_ACTIVITY),
        "last_event": last_event,
        "model": model_state,
    }
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


# Advice at least this similar to advice already shown is not shown again.
REPEAT_SIMILARITY = 0.6
_WORD = re.compile(r"[a-z0-9']+")


def similarity(a: str, b: str) -> float:
    """How much two pieces of advice say the same, in [0, 1]: the overlap of their sets of
    words (Jaccard), which ignores order and punctuation and so catches a rephrasing; short
    function words are left out. (difflib's character ratio rates "First advice." and
    "Second advice." as alike, so it is not used.)"""
    words_a = {w for w in _WORD.findall(a.lower()) if len(w) > 2}
    words_b = {w for w in _WORD.findall(b.lower()) if len(w) > 2}
    union = words_a | words_b
    return len(words_a & words_b) / len(union) if union else 1.0


def is_repeat(advice: str, shown: Sequence[str]) -> bool:
    """True when `advice` says nearly what one of the pieces of advice in `shown` said."""
    return any(similarity(advice, old) >= REPEAT_SIMILARITY for old in shown)


def is_nothing_to_add(reply: str) -> bool:
    """True for the sentinel, however the model decorated it, and for an empty reply."""
    return not reply.strip() or bool(_SENTINEL.search(reply))


class ProactiveAgent:
    """The proactive agent of one session: its request, and a look (`look`) that sends it when
    something changed and keeps the advice worth showing."""

    def __init__(self, provider: Provider, builder: ContextBuilder) -> None:
        self.provider = provider
        self.builder = builder

    def request(
        self,
        conversation: Sequence[Message],
        *,
        vision: bool,
        tools: bool = False,
        since: float | None = None,
    ) -> tuple[list[ChatMessage], AgentContext]:
        """The request; `since` (its last look) splits the log into new and collapsed."""
        context = self.builder.build("proactive", conversation, vision=vision, since=since)
        how = prompts.PROPOSALS_BY_TOOL if tools else prompts.PROPOSALS_BY_JSON
        text = f"{context.text}\n\n{prompts.PROACTIVE_INSTRUCTION}\n\n{how}"
        messages = [
            ChatMessage("system", prompts.PROACTIVE_SYSTEM),
            ChatMessage("user", text, images=context.images),
        ]
        return messages, context

    def look(self, session: AgentSession, *, force: bool = False) -> str | None:
        """One look for `session`: the advice (saved and logged), or None: unchanged, nothing
        new, switched off, or busy (another pass, another process, or the server answering)."""
        from filelock import FileLock, Timeout

        if not force and not session.proactive_enabled:
            return None
        if "proactive" in session._config_errors:
            raise session._config_errors["proactive"]
        if not self.provider.enabled:
            return None
        if not force and session._approval_missing("proactive") is not None:
            # The timer never contacts an endpoint the user has not approved; the page and
            # `duetml llm status` show what waits for approval, `advise` raises the sentence.
            return None
        gate = self.provider.server_gate()
        if gate is not None and (gate.busy or gate.urgent_waiting):
            return None  # the server is answering someone; look at the next tick
        if not session._proactive_running.acquire(blocking=False):
            return None
        try:
            lock = FileLock(str(session.project.state_dir / LOCK_FILE))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                return None  # another process (the web UI, a second chat) is looking
            try:
                return self._look(session)
            finally:
                lock.release()
        finally:
            session._proactive_running.release()

    def _look(self, session: AgentSession) -> str | None:
        provider = self.provider
        conversation = session.conversation()
        signature = state_signature(session.project, conversation)
        if session.store.state().get("proactive_last_look") == signature:
            return None
        session._check_ready("proactive")
        collected: list[str] = []
        since = session.store.state().get("proactive_last_look_ts")
        looked_at = time.time()
        try:
            session._sees_images("proactive")
            tools = session._uses_tools("proactive")

            def build(builder: ContextBuilder) -> tuple[list[ChatMessage], Any]:
                agent = ProactiveAgent(provider, builder)
                vision = session._sees_images("proactive")  # again: see _ask
                return agent.request(conversation, vision=vision, tools=tools, since=since)

            sent: dict[str, Any] = {}
            for piece in session._send(
                "proactive", build, sent, separator=None, on_restart=collected.clear, tools=tools
            ):
                collected.append(piece)
            reply, extra = session._with_proposals(
                "".join(collected).strip(), sent["calls"], sent["extra"]
            )
        except PreemptedError:
            self._log_pass(session.project, provider, "preempted")
            return None  # a question came first; the next tick looks again
        except DuetmlError as exc:
            self._log_pass(session.project, provider, "error", error=str(exc))
            raise

        def remember(state: dict[str, Any]) -> None:
            state["proactive_last_look"] = signature
            state["proactive_last_look_ts"] = looked_at

        session.store.update_state(remember)
        if not extra and is_nothing_to_add(reply):
            self._log_pass(session.project, provider, "nothing_to_add")
            return None
        advice = clean_text(reply, max_chars=MAX_ADVICE_CHARS)
        shown = [m["content"] for m in conversation if m["kind"] == "proactive"]
        if not extra and is_repeat(advice, shown):
            # nearly what the user was already told
            self._log_pass(session.project, provider, "repeat")
            return None
        session.store.append(("assistant", "proactive", advice, extra))
        self._log_pass(
            session.project,
            provider,
            "advice",
            advice_chars=len(advice),
            proposals=len((extra or {}).get("proposals") or ()),
        )
        return advice

    @staticmethod
    def _log_pass(project: Project, provider: Provider, result: str, **details: Any) -> None:
        project.log.record(
            "agent_proactive",
            result=result,
            provider=provider.name,
            model=provider.model or None,
            **details,
        )


class ProactiveTimer:
    """Runs `session.proactive_pass()` every `interval` seconds on a daemon thread.

    `on_advice(text)` gets each piece of advice; `on_error(exc)` gets a failure once, not again
    until the message changes (a stopped Ollama should not print the same line every minute).
    The pass itself checks the on/off switch, so switching off takes effect at the next tick.
    """

    def __init__(
        self,
        session: AgentSession,
        interval: float | None = None,
        *,
        on_advice: Callable[[str], None] | None = None,
        on_error: Callable[[DuetmlError], None] | None = None,
        first_delay: float | None = None,
    ) -> None:
        self.session = session
        self.interval = interval
        self.first_delay = first_delay
        self.on_advice = on_advice
        self.on_error = on_error
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None
        self._soon = False  # the last tick was told to wait: look again shortly
        self._woken = False
        # True while the proactive agent's server does not answer: looks wait until it does.
        self.paused = False

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="duetml-proactive", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ask the thread to end and wait for it; a pass in flight finishes its request first."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look now instead of at the next tick (e.g. right after the user changed something)."""
        self._woken = True
        self._wake.set()

    def _unreachable(self) -> bool:
        """Whether a failed look failed because the server does not answer (not, say, a
        missing model or a refused key, which a probe of the server would not detect)."""
        reachable, _ = self.session.reachable("proactive")
        return reachable is False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _delay(self, first: bool) -> float:
        if first and self.first_delay is not None:
            return max(self.first_delay, 0.0)
        interval = self.interval if self.interval is not None else self.session.proactive_interval
        if self._soon:
            return min(max(float(interval), 0.01), RECHECK_SECONDS)
        return max(float(interval), 0.01)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            self._wake.wait(self._delay(first))
            first = False
            self._wake.clear()
            if self._stop.is_set():
                break
            self.tick()

    def tick(self) -> str | None:
        """One pass with the timer's error handling; also usable without the thread.

        When the session says to wait (a reply being written or just written, the opening
        question unanswered), the pass is skipped and the timer looks again in a second.
        """
        try:
            # A wake-up (the user switched the agent on) asks for a look now: only a reply
            # being read makes it wait, not the unanswered opening question.
            patient, self._woken = not self._woken, False
            if self.session.waiting_reason(patient=patient) is not None:
                self._soon = True
                return None
            self._soon = False
            if self._last_error is not None and self.session.proactive_enabled:
                # The last look failed: while its server still does not answer, ask only
                # whether it is back (one cheap request), not for advice, so a stopped Ollama
                # costs neither a failed pass in the log every minute nor a repeated notice.
                reachable, _ = self.session.reachable("proactive")
                self.paused = reachable is False
                if self.paused:
                    return None
            advice = self.session.proactive_pass()
        except DuetmlError as exc:
            self.paused = self._unreachable()
            if str(exc) != self._last_error:
                self._last_error = str(exc)
                if self.on_error is not None:
                    self.on_error(exc)
            return None
        except Exception:  # a bug in one pass must not kill the timer
            log.exception("proactive pass failed")
            return None
        self._last_error = None
        self.paused = False
        if advice and self.on_advice is not None:
            self.on_advice(advice)
        return advice
