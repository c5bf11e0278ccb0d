"""The web side of a user study: a participant's session and the raters' page.

`create_session_app(study, pid)`: what `duetml serve --study DIR --participant P07` runs. The
participant's tasks are separate projects, so the server holds one ordinary duetml app (the
current task's, in the participant's condition: baseline has no agent feature) and swaps it
when the session moves to the next task. `/api/study/*` answers about this one participant's
session: no request names a participant, so nothing a page sends can reach another one's.

`create_rating_app(study)`: what `duetml study rate DIR` runs; raters see codes, never
participants or conditions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from duetml.errors import NotFoundError
from duetml.study.design import Study, Task
from duetml.study.session import RUNNING, ParticipantSession
from duetml.web.app import JSON_MAX_BYTES, STATIC_DIR, create_app
from duetml.web.errors import ERROR_RESPONSES, make_exception_handlers
from duetml.web.guard import RequestGuard, allowed_host_values

if TYPE_CHECKING:
    from duetml.agents import AgentSession
    from duetml.project import Project

DEFAULT_PORT = 8765
STUDY_PREFIX = "/api/study/"
_ACTIONS = ("consent", "start", "pause", "resume", "finish", "withdraw")


class _CurrentState:
    """`app.state.duetml` of the task app now served (DuetmlServer stops its streams)."""

    def __init__(self, owner: SessionServerApp) -> None:
        self._owner = owner

    @property
    def duetml(self) -> Any:
        return self._owner.task_app.state.duetml


class SessionServerApp:
    """An ASGI app: /api/study/* to the session's routes, everything else to the task app."""

    def __init__(
        self,
        study: Study,
        pid: str,
        agents: AgentSession | Callable[[Project], AgentSession] | None,
        hosts: frozenset[str],
        token: str | None,
        port: int,
        allowed_hosts: Iterable[str],
    ) -> None:
        self.study = study
        self.session = ParticipantSession(study, pid)
        self.baseline = self.session.condition == "baseline"
        self._agents = agents
        self._port = port
        self._allowed = list(allowed_hosts)
        self._token = token
        self._lock = threading.Lock()
        self._started = False
        self.task = self._task_to_serve()
        self.task_app = self._make_task_app(self.task)
        self.session_app = _session_routes(self)
        self.session_app.asgi_handler = RequestGuard(self.session_app.asgi_handler, hosts, token)
        self.state = _CurrentState(self)

    def _task_to_serve(self) -> Task:
        return self.session.current_task() or self.study.design.tasks[-1]

    def _make_task_app(self, task: Task) -> Litestar:
        app = create_app(
            self.study.task_project(self.session.participant.id, task.id),
            baseline=self.baseline,
            agents=None if self.baseline else self._agents,
            allowed_hosts=self._allowed,
            port=self._port,
            token=self._token,
            study_bar=True,
        )
        agents = app.state.duetml.agents
        if agents is not None:  # no unprompted advice outside the task's running time
            agents.hold = lambda: self._hold_reason(task)
        return app

    def _hold_reason(self, task: Task) -> str | None:
        record = self.session.record()
        if self.session.current_task(record) != task or self.session.phase(record) != RUNNING:
            return "the study task is not running"
        return None

    def follow_session(self) -> None:
        """Serve the project of the task the session is on now (after a task ended)."""
        with self._lock:
            task = self._task_to_serve()
            if task.id == self.task.id:
                return
            old = self.task_app.state.duetml
            self.task_app = self._make_task_app(task)
            self.task = task
            if self._started:
                self.task_app.state.duetml.start()
        old.stop()

    # Any, not litestar.types: Litestar's Scope leaves out the lifespan this app handles.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = str(scope.get("path", ""))
        if path.startswith(STUDY_PREFIX):
            await self.session_app(scope, receive, send)
        else:
            await self.task_app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                with self._lock:
                    self._started = True
                    self.task_app.state.duetml.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                with self._lock:
                    self.task_app.state.duetml.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _session_routes(server: SessionServerApp) -> Litestar:
    session = server.session

    def state() -> dict[str, Any]:
        shown = session.state()
        server.follow_session()
        shown["serving"] = server.task.id  # the page reloads when this changes
        shown["baseline"] = server.baseline
        return shown

    @get("/api/study/session", responses=ERROR_RESPONSES, sync_to_thread=True)
    def current() -> dict[str, Any]:
        """The participant's phase, task, time left and questionnaires."""
        return state()

    @post("/api/study/{action:str}", responses=ERROR_RESPONSES, sync_to_thread=True)
    def act(action: FromPath[str]) -> dict[str, Any]:
        """consent, start, pause, resume, finish (the participant is done) or withdraw."""
        if action not in _ACTIONS:
            raise NotFoundError(f"There is no study action {action[:20]!r}.")
        getattr(session, action)()
        return state()

    @post("/api/study/answers/submit", responses=ERROR_RESPONSES, sync_to_thread=True)
    def answers(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        """The questionnaires of the task just ended: {"UQ1": 4, ..., "UMUX2": 6}."""
        session.answer(data)
        return state()

    roots = (server.study.root,)
    return Litestar(
        route_handlers=[current, act, answers],
        exception_handlers=make_exception_handlers(roots),
        request_max_body_size=JSON_MAX_BYTES,
        openapi_config=None,
        debug=False,
    )


def create_session_app(
    study_root: Path | str,
    pid: str,
    agents: AgentSession | Callable[[Project], AgentSession] | None = None,
    allowed_hosts: Iterable[str] | None = None,
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> SessionServerApp:
    """A participant's session: their current task's page in their condition, plus the bar."""
    study = Study.open(study_root)
    study.participant_dir(pid)  # a clear error for an id that is not in the study
    hosts = allowed_host_values(port, allowed_hosts or ())
    return SessionServerApp(study, pid, agents, hosts, token, port, allowed_hosts or ())


# ----- the raters' page ------------------------------------------------------------------------


def create_rating_app(
    study_root: Path | str,
    allowed_hosts: Iterable[str] | None = None,
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> Litestar:
    """The raters' page (`duetml study rate`): the study's training data, blind, to rate."""
    study = Study.open(study_root)
    app = Litestar(
        route_handlers=[*_rating_page(), *_rating_api(study)],
        exception_handlers=make_exception_handlers((study.root,)),
        request_max_body_size=JSON_MAX_BYTES,
        openapi_config=None,
        debug=False,
    )
    app.asgi_handler = RequestGuard(
        app.asgi_handler, allowed_host_values(port, allowed_hosts or ()), token
    )
    return app


def _rating_page() -> list[HTTPRouteHandler]:
    """The raters' page and its files (no project's page: nothing else is served)."""
    static = {
        name: (STATIC_DIR / name).read_bytes()
        for name in ("study.html", "study.css", "js/study.js", "js/dom.js", "favicon.svg")
    }
    media = {
        ".html": "text/html",
        ".css": "text/css",
        ".js": "text/javascript",
        ".svg": "image/svg+xml",
    }

    @get("/", include_in_schema=False, sync_to_thread=False)
    def page() -> Response[bytes]:
        return Response(
            static["study.html"], media_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    @get("/static/{name:path}", include_in_schema=False, sync_to_thread=False)
    def files(name: FromPath[str]) -> Response[bytes]:
        found = static.get(name.lstrip("/"))
        if found is None:
            raise NotFoundError("There is no such file.")
        return Response(
            found, media_type=media[Path(name).suffix], headers={"Cache-Control": "no-cache"}
        )

    return [page, files]


def _rating_api(study: Study) -> list[HTTPRouteHandler]:
    """What a rater reads and saves: their queue, one rating, the photos' thumbnails."""
    from duetml.study import ratings
    from duetml.study.items import EQ
    from duetml.web.thumbs import ThumbnailCache

    thumbs = ThumbnailCache(study.root / ".rating-cache")
    photos: dict[tuple[str, str], Path] = {}  # (code, sha256) -> the photo's file

    @get("/api/rate/{rater:str}", responses=ERROR_RESPONSES, sync_to_thread=True)
    def queue(rater: FromPath[str]) -> dict[str, Any]:
        """The rater's training data to rate, in their own order, and what they rated."""
        saved = ratings.read_ratings(study, ratings.check_rater(rater))["ratings"]
        return {
            "rater": rater,
            "items": [
                {"id": i.id, "text": i.text, "points": i.points, "low": i.low, "high": i.high}
                for i in EQ.items
            ],
            "source": EQ.source,
            "data": [
                {
                    "code": r.code,
                    "categories": [
                        {
                            "name": c["name"],
                            "photos": [
                                f"/api/rate/photo/{r.code}/{p['sha256']}" for p in c["photos"]
                            ],
                        }
                        for c in listed(r)
                    ],
                    "rated": saved.get(r.code, {}).get("answers"),
                }
                for r in ratings.queue_for(study, rater)
            ],
        }

    @post("/api/rate/{rater:str}/{code:str}", responses=ERROR_RESPONSES, sync_to_thread=True)
    def rate(
        rater: FromPath[str], code: FromPath[str], data: JSONBody[dict[str, Any]]
    ) -> dict[str, Any]:
        """Save EQ1-EQ5 of one piece of training data for this rater."""
        ratings.save_rating(study, rater, code, data)
        return {"saved": code}

    @get("/api/rate/photo/{code:str}/{digest:str}", include_in_schema=False, sync_to_thread=True)
    def photo(code: FromPath[str], digest: FromPath[str]) -> Response[bytes]:
        """A thumbnail of a photo of that training data (by content hash: no file names)."""
        source = photos.get((code, digest))
        if source is None:  # not listed yet, or changed since: list that data again
            listed(ratings.find_rated(study, code))
            source = photos.get((code, digest))
        if source is None or not source.is_file():
            raise NotFoundError("That photo is not in this training data.")
        return Response(
            thumbs.get(digest, source),
            media_type="image/jpeg",
            headers={"Cache-Control": "private, max-age=3600"},
        )

    def listed(rated: ratings.Rated) -> list[dict[str, Any]]:
        """The rated data's categories; its photos remembered for the thumbnails' requests,
        each of which would otherwise list every participant's session and photos again."""
        categories = ratings.training_data(rated)
        for category in categories:
            for p in category["photos"]:
                photos[(rated.code, p["sha256"])] = rated.project / p["rel"]
        return categories

    return [queue, rate, photo]
