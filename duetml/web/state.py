"""What the server keeps while it runs: the project, the trainer, the agents, the watcher.

The page learns about changes through one event stream per tab. Its payload is a small
snapshot of cheap "versions" (of the photos, the model, the conversation, the trainer); a
tab compares them with what it shows and fetches only what changed. Changes made elsewhere
(the CLI, a file manager, another tab) are seen by the watcher, which stats the category
folders once a second: nothing is read, so it costs the same for ten photos or ten thousand.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from litestar.di import NamedDependency

from duetml.errors import DuetmlError
from duetml.project import SPLITS, ImageRecord, Project
from duetml.review import dismissals_version
from duetml.settings import SETTINGS_FILE, read_settings
from duetml.web.errors import for_page
from duetml.web.hub import Hub
from duetml.web.jobs import MapJob, TrainJob
from duetml.web.thumbs import ThumbnailCache

if TYPE_CHECKING:
    from duetml.agents import AgentSession, ProactiveTimer
    from duetml.prediction import Prediction

log = logging.getLogger("duetml.web")
Answer = TypeVar("Answer")

WATCH_EVERY_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0  # a comment on idle event streams, so proxies and browsers keep them
LIVE_LOG_SECONDS = 10.0  # the live camera's frames reach the interaction log this often
REACH_SECONDS = 10.0  # the assistant's servers are asked whether they answer at most this often


class WebState:
    """One server's state; route handlers receive it as ``web: InjectedWebState``."""

    def __init__(self, project: Project, agents: AgentSession | None, baseline: bool) -> None:
        self.project = project
        self.baseline = baseline
        self.agents = agents  # an AgentSession, or None (baseline, or agents unavailable)
        self.agents_problem: str | None = None
        self.proactive_error: str | None = None  # the proactive agent's last failure, if any
        self.hub = Hub()
        self.thumbs = ThumbnailCache(project.state_dir)
        self.train = TrainJob(project, self.hub.bump)
        self.map = MapJob(project, self.hub.bump)
        self.versions: dict[str, Any] = {}
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self._digests: dict[str, tuple[int, int, str]] = {}
        # (split, category) -> (folder mtime, its photos, their hashes); see listing().
        self._folders: dict[tuple[str, str], tuple[int, list[ImageRecord], dict[str, str]]] = {}
        self._listing_lock = threading.Lock()
        self._answers: dict[str, tuple[tuple[str, ...], Any]] = {}
        self._eval_cache: tuple[tuple[str, str], Any] | None = None
        self._eval_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._timer: ProactiveTimer | None = None
        self._live_lock = threading.Lock()
        self._live_frames = 0
        self._live_logged = -LIVE_LOG_SECONDS
        # agent -> (when asked, (reachable, why not)): the page asks often, a server once in a while
        self._reach: dict[str, tuple[float, tuple[bool | None, str | None]]] = {}
        self._reach_lock = threading.Lock()
        self.refresh_versions()

    # ----- the photos, listed once per folder change -----------------------------------------
    def listing(self) -> tuple[list[ImageRecord], dict[str, str]]:
        """Every photo (train, then test) and its content hash, re-read only in folders whose
        modification time changed since the last request: adding, removing or renaming a file
        changes its folder's, so at 26,000 photos a request stats ~100 folders, not every file.
        (A photo overwritten in place under the same name keeps its folder's time: it is seen
        at the next change of that folder.)"""
        with self._listing_lock:
            current: list[tuple[tuple[str, str], int]] = []
            stale: dict[tuple[str, str], tuple[int, list[ImageRecord]]] = {}
            for split in SPLITS:
                for name in self.project.category_names(split):
                    try:
                        stamp = (self.project.split_dir(split) / name).stat().st_mtime_ns
                    except OSError:
                        continue
                    key = (split, name)
                    cached = self._folders.get(key)
                    if cached is None or cached[0] != stamp:
                        try:
                            stale[key] = (stamp, self.project.images(split, name))
                        except DuetmlError:
                            continue  # removed or replaced by a link while we looked
                    current.append((key, stamp))
            # The changed folders' photos are hashed in one go (one read of the hash index).
            fresh = self.digests([r for _, folder in stale.values() for r in folder])
            for key, (stamp, folder) in stale.items():
                self._folders[key] = (
                    stamp,
                    folder,
                    {r.rel: fresh[r.rel] for r in folder if r.rel in fresh},
                )
            for key in set(self._folders) - {key for key, _ in current}:
                del self._folders[key]
            records: list[ImageRecord] = []
            hashes: dict[str, str] = {}
            for key, _ in current:
                _, folder, digests = self._folders[key]
                records += folder
                hashes.update(digests)
            return records, hashes

    # ----- content hashes, remembered between requests -------------------------------------
    def digests(self, records: list[ImageRecord]) -> dict[str, str]:
        """rel -> sha256 like `Project.hashes`, without re-reading its index for every thumbnail.

        A photo that vanishes meanwhile (the CLI moved it) is left out rather than failing.
        """
        found: dict[str, str] = {}
        missing: list[tuple[ImageRecord, os.stat_result]] = []
        for record in records:
            try:
                stat = record.path.stat()
            except OSError:
                continue
            known = self._digests.get(record.rel)
            if known and known[:2] == (stat.st_size, stat.st_mtime_ns):
                found[record.rel] = known[2]
            else:
                missing.append((record, stat))
        if not missing:
            return found
        try:
            stats = {record.rel: stat for record, stat in missing}
            fresh = self.project.hashes([record for record, _ in missing], stats)
        except OSError:  # one of them moved while we looked: hash them one by one
            fresh = {}
            for record, _ in missing:
                try:
                    fresh.update(self.project.hashes([record]))
                except OSError:
                    continue
        for record, stat in missing:
            if record.rel in fresh:
                found[record.rel] = fresh[record.rel]
                self._digests[record.rel] = (stat.st_size, stat.st_mtime_ns, fresh[record.rel])
        return found

    # ----- versions the page follows ------------------------------------------------------
    def data_version(self) -> str:
        """Changes when a photo or category is added, removed, moved or renamed anywhere."""
        stamps: list[str] = []
        for split in SPLITS:
            folder = self.project.root / split
            try:
                stamps.append(f"{split}:{folder.stat().st_mtime_ns}")
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    stamp = entry.stat(follow_symlinks=False).st_mtime_ns
                    stamps.append(f"{split}/{entry.name}:{stamp}")
                except OSError:
                    continue
        stamps.append(f"journal:{_mtime(self.project.state_dir / 'journal.json')}")
        return hashlib.sha1("\n".join(sorted(stamps)).encode()).hexdigest()[:12]

    def model_version(self) -> str:
        return str(_mtime(self.project.state_dir / "model" / "model.npz"))

    def chat_version(self) -> str:
        if self.agents is None:
            return ""
        try:
            conversation = self.agents.conversation()
            enabled = bool(self.agents.proactive_enabled)
        except Exception:
            log.exception("reading the conversation failed")
            return "error"
        last = conversation[-1].get("id", "") if conversation else ""
        # The proactive agent pausing for its server (or failing) changes what the page says.
        paused = int(self.proactive_paused)
        failed = int(self.proactive_error is not None)
        return f"{len(conversation)}:{last}:{int(enabled)}:{paused}{failed}"

    def settings_version(self) -> str:
        return str(_mtime(self.project.root / SETTINGS_FILE))

    def refresh_versions(self) -> bool:
        versions = {
            "data": self.data_version(),
            "model": self.model_version(),
            "settings": self.settings_version(),
            "chat": self.chat_version(),
            # Findings kept as they are (here, in another tab, or with `duetml review dismiss`).
            "review": dismissals_version(self.project),
        }
        if self.versions and versions["settings"] != self.versions.get("settings"):
            self._reload_settings()
        changed = versions != self.versions
        self.versions = versions
        return changed

    def _reload_settings(self) -> None:
        """duetml.toml changed (`duetml llm use`, an editor, the page's own switch): re-read it."""
        try:
            self.project.settings = read_settings(self.project.root)
            if self.agents is not None:
                self.agents.refresh()
        except Exception:
            log.warning("could not re-read the project settings", exc_info=True)

    def snapshot(self) -> dict[str, Any]:
        return {**self.versions, "train": self.train.snapshot()}

    # ----- background threads -------------------------------------------------------------
    def start(self) -> None:
        # List (and hash) the photos while the browser is still opening: at 26,000 photos the
        # first listing takes seconds, every later one a few folder stats.
        threading.Thread(target=self._list_quietly, name="duetml-list", daemon=True).start()
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="duetml-watch", daemon=True)
            self._watcher.start()
        if self.agents is not None and self._timer is None:
            self._timer = _start_proactive_timer(self, self.agents)

    def stop(self) -> None:
        self.hub.stop()
        timer, self._timer = self._timer, None
        if timer is not None:
            try:
                timer.stop()
            except Exception:
                log.exception("stopping the proactive timer failed")
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.join(timeout=2 * WATCH_EVERY_SECONDS)

    def _list_quietly(self) -> None:
        try:
            self.listing()
        except Exception:
            log.warning("listing the photos failed", exc_info=True)

    def _watch(self) -> None:
        while not self.hub.stopping.wait(WATCH_EVERY_SECONDS):
            try:
                if self.refresh_versions():
                    self.hub.bump()
            except Exception:
                log.exception("watching the project failed")

    # ----- whether the assistant's servers answer --------------------------------------------
    def reachable(self, agent: str, fresh: bool = False) -> tuple[bool | None, str | None]:
        """The agent's server answers (True), does not (False, why), or is not asked (None):
        asked at most once every REACH_SECONDS unless `fresh` (the page's "Check again")."""
        if self.agents is None:
            return None, None
        now = time.monotonic()
        with self._reach_lock:
            cached = self._reach.get(agent)
            if cached is not None and not fresh and now - cached[0] < REACH_SECONDS:
                return cached[1]
        answer = self.agents.reachable(agent)
        with self._reach_lock:
            self._reach[agent] = (time.monotonic(), answer)
        return answer

    @property
    def proactive_paused(self) -> bool:
        """The proactive timer waits for its server to answer again."""
        return self._timer is not None and self._timer.paused

    def wake_proactive(self) -> bool:
        """Have the proactive agent look now (after it was switched on); False if no timer."""
        if self._timer is None:
            return False
        self._timer.wake()
        return True

    def changed(self) -> None:
        """Call after the page changed something, so every tab hears at once, not in a second."""
        self.refresh_versions()
        self.hub.bump()

    def note_live_predictions(self, predictions: Sequence[Prediction]) -> None:
        """Log the live camera's predictions in summary: its first frame, then one line per
        LIVE_LOG_SECONDS with the number of frames since (not five lines a second)."""
        with self._live_lock:
            self._live_frames += len(predictions)
            now = time.monotonic()
            if now - self._live_logged < LIVE_LOG_SECONDS:
                return
            frames, self._live_frames, self._live_logged = self._live_frames, 0, now
        # "hat 92%" or "not sure (closest: hat 80%)": the agents must not read a frame the
        # model was not sure of as a confident answer.
        latest = next((p.summary() for p in reversed(predictions) if p.ranking), None)
        self.project.log.record("predict_live", frames=frames, latest=latest)

    # ----- answers computed once per project state ----------------------------------------
    def once_per_state(
        self,
        name: str,
        compute: Callable[[], Answer],
        model: bool = False,
        files: tuple[Path, ...] = (),
    ) -> Answer:
        """``compute()``, again only when the photos, the undo journal, the settings, the
        kept-as-is findings (or, with ``model``, the model) changed: a page load, a second tab
        or the event stream's refetch then costs a few folder stats, not a walk of 26,000
        photos. ``files``: more files whose change makes it compute again. The key is taken
        before computing, so a change meanwhile recomputes next time.
        """
        key: tuple[str, ...] = (
            self.data_version(),
            self.settings_version(),
            dismissals_version(self.project),
        )
        if model:
            key += (self.model_version(),)
        key += tuple(str(_mtime(path)) for path in files)
        cached = self._answers.get(name)
        if cached is not None and cached[0] == key:
            return cast(Answer, copy.copy(cached[1]))  # a caller may add keys to its copy
        answer = compute()
        self._answers[name] = (key, answer)
        return copy.copy(answer)

    # ----- evaluation, computed once per model and data version ---------------------------
    def evaluation(self, compute: Callable[[], Answer]) -> Answer:
        key = (self.model_version(), self.data_version())
        with self._eval_lock:
            if self._eval_cache is not None and self._eval_cache[0] == key:
                return cast(Answer, self._eval_cache[1])
            report = compute()
            self._eval_cache = (key, report)
            return report


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _start_proactive_timer(web: WebState, session: AgentSession) -> ProactiveTimer | None:
    """Run the agents package's ProactiveTimer; new advice and failures reach the pages."""
    from duetml.agents import ProactiveTimer

    def on_advice(_: str) -> None:
        web.proactive_error = None
        web.changed()

    def on_error(exc: Exception) -> None:
        web.proactive_error = for_page(exc, (web.project.root,))
        web.changed()

    try:
        return ProactiveTimer(session, on_advice=on_advice, on_error=on_error).start()
    except Exception:
        log.exception("the proactive agent could not start")
        return None


# A route handler's `web` parameter: create_app provides the server's WebState under that name
# (Litestar's dependency injection, `Provide`).
InjectedWebState = NamedDependency[WebState]
