"""The page's background jobs, one thread each at a time: training (its progress for every open
tab) and the layout of the map of all photos."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from duetml import locks
from duetml.errors import BusyError, DuetmlError
from duetml.project import Project
from duetml.training import TrainReport
from duetml.web.errors import for_page

if TYPE_CHECKING:
    from duetml.features import Progress  # numpy: not imported at startup

log = logging.getLogger("duetml.web")

PROGRESS_EVERY_SECONDS = 0.25  # progress reaches the pages at most this often
GENERIC_FAILURE = (
    "Training failed unexpectedly: the details are in the terminal running `duetml serve`."
)


class TrainState(TypedDict, total=False):
    """The trainer's state as GET /api/train/state and the event stream carry it."""

    state: Literal["idle", "running", "done", "failed"]
    run: int  # how many trainings this server started
    phase: str  # while running: "features", then the classifier's phases
    label: str  # the phase in words
    done: int
    total: int
    rate: float | None  # items a second
    eta: float | None  # seconds left
    started_at: float | None
    finished_at: float
    result: TrainReport  # done
    error: str  # failed: one sentence


class TrainJob:
    """The state of the page's trainer, readable from any thread."""

    def __init__(self, project: Project, on_change: Callable[[], None]) -> None:
        self.project = project
        self._on_change = on_change
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_notice = 0.0
        self.state: TrainState = {"state": "idle", "run": 0}

    @property
    def running(self) -> bool:
        return bool(self.state["state"] == "running")

    def snapshot(self) -> TrainState:
        with self._lock:
            return self.state.copy()

    def start(self) -> TrainState:
        """Start training in a thread; BusyError if this server or another duetml is training."""
        with self._lock:
            if self.state["state"] == "running":
                raise BusyError(
                    "The model is already training (started from this page or another tab): "
                    "wait for it to finish."
                )
            # Ask the lock first so a CLI `duetml train` is reported now, not as a failed job;
            # the trainer takes it again, and reports busy itself if it lost a race meanwhile.
            with locks.hold(
                self.project.state_dir / "train.lock",
                0.05,
                "Another training of this project is running (from the command line?): "
                "wait for it to finish.",
            ):
                pass
            run = self.state.get("run", 0) + 1
            self.state = {
                "state": "running",
                "run": run,
                "phase": "starting",
                "done": 0,
                "total": 0,
                "rate": None,
                "eta": None,
                "started_at": time.time(),
            }
            self._thread = threading.Thread(
                target=self._train, name=f"duetml-train-{run}", daemon=True
            )
            self._thread.start()
            snapshot = self.state.copy()
        self._on_change()
        return snapshot

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _progress(self, progress: Progress) -> None:
        from duetml.training import PHASE_LABELS

        with self._lock:
            self.state.update(
                {
                    # features, then the classifier's phases (kernel, selection, ...), each
                    # with its own done/total, so the page shows what the seconds go to.
                    "phase": progress.phase,
                    "label": PHASE_LABELS.get(progress.phase, progress.phase),
                    "done": progress.done,
                    "total": progress.total,
                    "rate": round(progress.rate, 2),
                    "eta": round(progress.eta, 1) if progress.eta is not None else None,
                }
            )
        now = time.monotonic()
        if now - self._last_notice >= PROGRESS_EVERY_SECONDS or progress.done >= progress.total:
            self._last_notice = now
            self._on_change()

    def _train(self) -> None:
        from duetml.training import train_project

        outcome: TrainState
        try:
            report = train_project(self.project, progress=self._progress)
            outcome = {"state": "done", "result": report}
        except DuetmlError as exc:
            outcome = {"state": "failed", "error": for_page(exc, (self.project.root,))}
        except Exception:
            log.exception("training failed")
            outcome = {"state": "failed", "error": GENERIC_FAILURE}
        with self._lock:
            self.state = {
                "run": self.state.get("run", 0),
                "started_at": self.state.get("started_at"),
                "finished_at": time.time(),
                **outcome,
            }
        self._on_change()


MAP_FAILURE = (
    "The map could not be computed: the details are in the terminal running `duetml serve`."
)


class MapJob:
    """Computes the map's layout in a thread, one at a time, so no request waits for it; and
    remembers the last answer of GET /api/map with the versions it was made for."""

    def __init__(self, project: Project, on_change: Callable[[], None]) -> None:
        self.project = project
        self._on_change = on_change
        self._lock = threading.Lock()
        self._answer: tuple[tuple[object, ...], dict[str, Any]] | None = None
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

    def answer(self, key: tuple[object, ...]) -> dict[str, Any] | None:
        """A copy of the last answer if it was made for `key` (the same photos, model...)."""
        with self._lock:
            answer = self._answer
        return dict(answer[1]) if answer is not None and answer[0] == key else None

    def remember(self, key: tuple[object, ...], answer: dict[str, Any]) -> None:
        with self._lock:
            self._answer = (key, answer)

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
            self.error, self._failed_for = for_page(exc, (self.project.root,)), key
        except Exception:
            log.exception("computing the map failed")
            self.error, self._failed_for = MAP_FAILURE, key
        self._on_change()
