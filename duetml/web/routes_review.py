"""The data review and the map of all photos, around `duetml.review` and `duetml.datamap`.

GETs only read (the map's layout is a cache: computing it in the background changes nothing
a person made); every change is a POST that goes through the core, is logged and undoable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from litestar import Response, get

from duetml.errors import DuetmlError
from duetml.project import Project
from duetml.web.errors import ERROR_RESPONSES, scrub
from duetml.web.state import WebState

log = logging.getLogger("duetml.web")

MAP_FAILURE = (
    "The map could not be computed: the details are in the terminal running `duetml serve`."
)


class MapJob:
    """Computes the map's layout in a thread, one at a time, so no request waits for it."""

    def __init__(self, project: Project, on_change: Callable[[], None]) -> None:
        self.project = project
        self._on_change = on_change
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self._failed_for: str | None = None  # the photos a failure was for: not retried

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure(self, key: str) -> bool:
        """Start computing unless running, or already failed for these very photos."""
        with self._lock:
            if self.running:
                return True
            if self._failed_for == key:
                return False
            self.error = None
            self._thread = threading.Thread(
                target=self._compute, args=(key,), name="duetml-map", daemon=True
            )
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _compute(self, key: str) -> None:
        from duetml.datamap import compute_layout

        try:
            compute_layout(self.project)
            self._failed_for = None
        except DuetmlError as exc:
            self.error, self._failed_for = scrub(str(exc), (self.project.root,)), key
        except Exception:
            log.exception("computing the map failed")
            self.error, self._failed_for = MAP_FAILURE, key
        self._on_change()


def review_routes(web: WebState) -> list[Any]:
    project = web.project
    maps = MapJob(project, web.hub.bump)

    @get(
        "/api/map",
        responses=ERROR_RESPONSES,
        sync_to_thread=True,
        summary="Every photo's place on the map of all photos (computed in the background)",
        description="Columns with one entry per photo: ids, x, y (0-1), category (an index "
        "into categories), test (1 for a test photo), flag (an index into findings, -1 if "
        "none). `computing` is true while the layout is being computed: ask again shortly.",
    )
    def photo_map() -> Response[dict[str, Any]]:
        from duetml.datamap import photo_map
        from duetml.training import model_path

        started = time.perf_counter()
        findings, flags = _flags(project)
        result = photo_map(project, compute=False, flags=flags)
        result["findings"] = findings
        # After the first training, and never beside it: both would extract features at once.
        computing = (
            bool(result["needs_layout"])
            and model_path(project).is_file()
            and not web.train.running
            and maps.ensure(str(result["layout_key"]))
        )
        result["computing"] = computing or maps.running
        result["error"] = None if computing else maps.error
        log.debug("map answered in %.2f s", time.perf_counter() - started)
        return Response(result, headers={"Cache-Control": "no-store"})

    return [photo_map]


def _flags(project: Project) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The review's findings (id, kind, message) and, per photo, the index of its first one."""
    return [], {}
