"""`create_app(project)`: the Litestar app behind `duetml serve`, testable without a socket."""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar, Response, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from duetml import __version__
from duetml.errors import NotFoundError
from duetml.project import Project
from duetml.web.errors import ERROR_RESPONSES, make_exception_handlers, scrub
from duetml.web.guard import RequestGuard, allowed_host_values
from duetml.web.payloads import ProjectInfo
from duetml.web.routes_agents import AGENT_ROUTES
from duetml.web.routes_data import DATA_ROUTES, UPLOAD_MAX_BYTES, UPLOAD_MAX_FILES
from duetml.web.routes_llm import LLM_ROUTES
from duetml.web.routes_model import MODEL_ROUTES
from duetml.web.routes_review import REVIEW_ROUTES
from duetml.web.state import InjectedWebState, WebState

if TYPE_CHECKING:
    from duetml.agents import AgentSession

log = logging.getLogger("duetml.web")

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_PORT = 8765
JSON_MAX_BYTES = 1024 * 1024  # every request that is not an upload
_AGENT_BLOCK = re.compile(r"<!--agents-->.*?<!--/agents-->", re.DOTALL)
_TEXT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def create_app(
    project_root: Path | str,
    baseline: bool = False,
    agents: AgentSession | Callable[[Project], AgentSession] | None = None,
    allowed_hosts: Iterable[str] | None = None,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    study_bar: bool = False,
) -> Litestar:
    """The web UI for the project at ``project_root``.

    ``agents`` is an AgentSession (or a callable making one from the project); by default one
    is made from the project's settings. ``baseline`` removes every agent feature, for studies
    comparing the tool with and without the assistant. ``allowed_hosts`` adds host names the
    server answers to (the ``--host`` the user chose) beside 127.0.0.1, localhost and [::1];
    ``token``, when given, must come with every request (a link's ``?token=``, then a cookie).
    ``study_bar`` adds a user study's task bar, timer and questionnaires to the page
    (duetml/web/routes_study.py serves what it asks for).
    """
    project = Project.open(project_root, source="web")
    session, problem = (None, None) if baseline else _agent_session(project, agents)
    web = WebState(project, session, baseline)
    web.agents_problem = problem
    assets = _load_assets(baseline, study_bar)

    @get("/", include_in_schema=False, sync_to_thread=False)
    def page() -> Response[bytes]:
        return Response(
            assets["index.html"][0],
            media_type=assets["index.html"][1],
            headers={"Cache-Control": "no-cache"},
        )

    @get("/static/{name:path}", include_in_schema=False, sync_to_thread=False)
    def static(name: FromPath[str]) -> Response[bytes]:
        found = assets.get(name.lstrip("/"))
        if found is None:
            raise NotFoundError("There is no such file.")
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    handlers: list[Any] = [page, static, *APP_ROUTES, *DATA_ROUTES, *MODEL_ROUTES, *REVIEW_ROUTES]
    if not baseline:
        handlers += [*AGENT_ROUTES, *LLM_ROUTES]

    def the_web_state() -> WebState:
        return web

    roots = tuple({project.root, Path(project_root).absolute()})
    app = Litestar(
        route_handlers=handlers,
        exception_handlers=make_exception_handlers(roots),
        openapi_config=OpenAPIConfig(
            title="duetml",
            version=__version__,
            description="The local web UI of duetml (one person, one project, this machine).",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        # Every handler that takes `web: InjectedWebState` gets this server's state.
        dependencies={"web": Provide(the_web_state, sync_to_thread=False)},
        request_max_body_size=JSON_MAX_BYTES,
        on_startup=[lambda: web.start()],
        on_shutdown=[lambda: web.stop()],
        debug=False,
    )
    app.state.duetml = web
    hosts = allowed_host_values(port, allowed_hosts or ())
    # Wrapping the finished handler (not Litestar middleware) so unmatched paths are guarded too.
    app.asgi_handler = RequestGuard(app.asgi_handler, hosts, token)
    return app


@get(
    "/api/project",
    responses=ERROR_RESPONSES,
    summary="The project and what the page can do",
    sync_to_thread=False,
)
def project_info(web: InjectedWebState) -> ProjectInfo:
    from duetml.backbones import INPUT_SIZE
    from duetml.health import TINY_CATEGORY
    from duetml.web.routes_model import PREDICT_MAX_FILES

    # The page's limits and thresholds come from here, each defined once in the core.
    return ProjectInfo(
        name=web.project.root.name,
        goal=web.project.goal,
        baseline=web.baseline,
        agents=web.agents is not None,
        version=__version__,
        upload_max_bytes=UPLOAD_MAX_BYTES,
        upload_max_files=UPLOAD_MAX_FILES,
        predict_max_files=PREDICT_MAX_FILES,
        tiny_category=TINY_CATEGORY,  # fewer photos: the overview warns
        model_input_side=INPUT_SIZE,  # the camera's live frames are this wide, no wider
    )


@get(
    "/api/log",
    responses=ERROR_RESPONSES,
    summary="The interaction log (JSON lines), as a download",
    media_type="application/x-ndjson",
    sync_to_thread=True,
)
def download_log(web: InjectedWebState) -> Response[bytes]:
    project = web.project
    path = project.log.path
    data = path.read_bytes() if path.is_file() else b""
    return Response(
        data,
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": (
                f'attachment; filename="{_safe_filename(project.root.name)}-events.jsonl"'
            ),
            "Cache-Control": "no-store",
        },
    )


@get(
    "/api/events",
    responses=ERROR_RESPONSES,
    summary="Server-sent events: a state snapshot whenever something changes",
    media_type="text/event-stream",
)
async def events(web: InjectedWebState) -> ServerSentEvent:
    return ServerSentEvent(_event_stream(web), headers={"Cache-Control": "no-store"})


# The handlers above take the server's WebState as `web`, injected by create_app.
APP_ROUTES = [project_info, download_log, events]


def _agent_session(
    project: Project, agents: AgentSession | Callable[[Project], AgentSession] | None
) -> tuple[AgentSession | None, str | None]:
    """The AgentSession given, or made by the callable given, or made from the settings."""
    try:
        from duetml.agents import AgentSession

        if isinstance(agents, AgentSession):
            return agents, None
        return (AgentSession(project) if agents is None else agents(project)), None
    except Exception as exc:  # noqa: BLE001 - the page must work without the assistant
        from duetml.errors import DuetmlError

        log.warning("the assistant could not start: %s", exc)
        message = str(exc) if isinstance(exc, DuetmlError) else "The assistant could not start."
        return None, scrub(message, (project.root,))


def _load_assets(baseline: bool, study_bar: bool = False) -> dict[str, tuple[bytes, str]]:
    """Every static file, read once: only files that exist at start-up can ever be served."""
    assets: dict[str, tuple[bytes, str]] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name.startswith("."):
            continue
        name = path.relative_to(STATIC_DIR).as_posix()
        media = (
            _TEXT_TYPES.get(path.suffix)
            or mimetypes.guess_type(name)[0]
            or "application/octet-stream"
        )
        # Litestar adds "; charset=utf-8" to text/* itself; adding it here too sent it twice.
        if media.endswith("javascript") and not media.startswith("text/"):
            media += "; charset=utf-8"
        assets[name] = (path.read_bytes(), media)
    html = assets["index.html"][0].decode("utf-8")
    html = (
        _AGENT_BLOCK.sub("", html)
        if baseline
        else html.replace("<!--agents-->", "").replace("<!--/agents-->", "")
    )
    if study_bar:  # --- the user study's bar (duetml/study); nothing else changes ---
        html = html.replace("</head>", STUDY_HEAD + "</head>", 1)
    assets["index.html"] = (html.encode("utf-8"), "text/html")
    return assets


STUDY_HEAD = (
    '<link rel="stylesheet" href="/static/study.css" />\n'
    '    <script type="module" src="/static/js/study-bar.js"></script>\n  '
)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "duetml"


async def _event_stream(web: WebState) -> AsyncIterator[ServerSentEventMessage]:
    """A snapshot now, then one whenever it changes; a comment now and then keeps it open."""
    sent: dict[str, Any] | None = None
    yield ServerSentEventMessage(data=None, retry=2000, comment="duetml")
    while not web.hub.stopping.is_set():
        revision = web.hub.revision
        snapshot = web.snapshot()
        if snapshot != sent:
            sent = snapshot
            yield ServerSentEventMessage(event="state", data=msgspec.json.encode(snapshot).decode())
        if await web.hub.wait(revision, web.heartbeat_seconds) == revision:
            yield ServerSentEventMessage(data=None, comment="heartbeat")
