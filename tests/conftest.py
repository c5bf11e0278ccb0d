"""Shared fixtures, defined once here. Every test runs with DUETML_HOME in a temp folder, never
the real home, and without the LLM settings of the shell that started it (`clean_env`).

One DUETML_HOME serves the whole session so the backbone's one-time ONNX export (a few
seconds) is paid once; tests that need a pristine home make their own.

A fixture with a set-up that differs between files takes its options from a marker of its own
name on the test or the module (`pytestmark`), so each file says what differs, not the rest:
    @pytest.mark.project(per_category=4, categories=("hat", "shoes"), goal="...")
    @pytest.mark.app(baseline=True, allowed_hosts=["duet.lan"], token="...", base_url="...")
    @pytest.mark.ollama(models={"qwen2.5vl:latest": ["completion", "vision"]})
    pytestmark = pytest.mark.camera   (the module's `browser` has a fake camera, allowed)
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import make_project
from hypothesis import settings

from duetml.project import Project

if TYPE_CHECKING:
    from litestar import Litestar
    from llm_fakes import FakeOllamaServer
    from playwright.sync_api import Browser, Playwright
    from web_helpers import FakeAgents, Watch, WebClient

# The shared test helpers assert too: pytest rewrites their asserts only if told before import.
pytest.register_assert_rewrite("agent_fakes", "llm_fakes", "web_helpers")

# CI explores the same examples every run, so a submission lands or fails on its own merits;
# on a developer's machine Hypothesis keeps searching afresh and finds new cases.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

# Settings a developer's shell may hold; the agent tests must not see them.
LLM_ENV_VARS = (
    "DUETML_PASSIVE_LLM",
    "DUETML_PROACTIVE_LLM",
    "OLLAMA_HOST",
    "OLLAMA_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DUETML_PROJECT",
    "DUETML_MAX_CONTEXT",
)

_SESSION_HOME = tempfile.mkdtemp(prefix="duetml-test-home-")
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["DUETML_HOME"] = _SESSION_HOME
# Gone before any fixture runs (session-wide ones too), and again before each test (clean_env).
for _var in LLM_ENV_VARS:
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def duetml_home() -> Path:
    return Path(_SESSION_HOME)


@pytest.fixture(scope="session")
def _trained_demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, trained once per session (5 test photos per category held out)."""
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    root = tmp_path_factory.mktemp("template") / "demo"
    train_project(create_demo_project(root))
    return root


@pytest.fixture
def trained_demo(_trained_demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the trained demo project that a test may change freely."""
    root = tmp_path / "demo"
    shutil.copytree(_trained_demo_template, root, symlinks=True)
    return root


# Where the Caltech subset's features are kept between test sessions on one machine, so only
# the first session extracts them (minutes); later ones train in seconds.
CALTECH_FEATURES = Path(os.environ.get("DUETML_TEST_FEATURES", "/tmp/duetml-test-features"))


@pytest.fixture(scope="session")
def trained_caltech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared Caltech subset (100 categories, 5,233 photos) as a project, trained once
    per session and shared by every test that needs a big real project: open it read-only,
    or copy it (shutil.copytree(..., symlinks=True)) to change it. Skips where the shared
    data is absent (CI has it)."""
    from helpers import CALTECH

    if not CALTECH.is_dir():
        pytest.skip(f"the Caltech-101 subset is not at {CALTECH} (CI has it)")
    from duetml.training import feature_cache, train_project

    root = tmp_path_factory.mktemp("caltech") / "caltech"
    project, _ = Project.init(root, goal="recognise 100 kinds of objects")
    # Copied as a person copies folders in (the set is already clean; an import would decode
    # every photo again, a minute here).
    shutil.copytree(CALTECH, project.split_dir("train"), dirs_exist_ok=True)
    cache = feature_cache(project)
    kept = CALTECH_FEATURES / cache.name
    if kept.is_dir():  # the cache is a set of segment files: copy them all
        cache.folder.mkdir(parents=True, exist_ok=True)
        for segment in kept.iterdir():
            shutil.copy(segment, cache.folder / segment.name)
    train_project(project)
    if not kept.is_dir():
        kept.mkdir(parents=True)
        for segment in feature_cache(project).segments():
            shutil.copy(segment, kept / segment.name)
    return root


def marker_options(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    """The keyword arguments of the closest `@pytest.mark.<name>(...)` (none: {})."""
    marker = request.node.get_closest_marker(name)
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """A new project at tmp_path/"proj": 3 real demo photos in each of the demo's 4
    categories, no model. `@pytest.mark.project(...)` passes other make_project arguments
    (per_category, categories, goal)."""
    return make_project(
        tmp_path / "proj", **{"per_category": 3, **marker_options(request, "project")}
    )


@pytest.fixture
def agents() -> FakeAgents:
    """(factory, passive, proactive): the real AgentSession over two FakeProviders that the
    `app` fixture serves (queue replies on passive and proactive)."""
    from web_helpers import fake_agents

    return fake_agents()


def _app_options(request: pytest.FixtureRequest, agents: FakeAgents) -> tuple[dict[str, Any], str]:
    """create_app's options for a test (its `app` marker over the defaults), and base_url."""
    from web_helpers import BASE, PORT

    options = {"agents": agents[0], "port": PORT, **marker_options(request, "app")}
    return options, options.pop("base_url", BASE)


@pytest.fixture
def app(
    request: pytest.FixtureRequest,
    project: Project,
    agents: FakeAgents,
) -> Litestar:
    """The web app on `project` as `duetml serve` makes it, at 127.0.0.1:8765, with `agents`
    for its assistant. `@pytest.mark.app(...)` passes other create_app options (baseline,
    allowed_hosts, token...) and, as base_url, where the `client`'s requests go."""
    from duetml.web import create_app

    return create_app(project.root, **_app_options(request, agents)[0])


def _web_client(
    request: pytest.FixtureRequest,
    app: Litestar,
    project: Project,
    agents: FakeAgents,
) -> Iterator[WebClient]:
    from web_helpers import WebClient

    with WebClient(app, base_url=_app_options(request, agents)[1]) as client:
        client.project = project
        client.passive, client.proactive = agents[1], agents[2]
        yield client


@pytest.fixture
def client(
    request: pytest.FixtureRequest,
    app: Litestar,
    project: Project,
    agents: FakeAgents,
) -> Iterator[WebClient]:
    """Litestar's TestClient on `app` (no socket), started; `client.project` is `project`."""
    yield from _web_client(request, app, project, agents)


@pytest.fixture
def trained_client(
    request: pytest.FixtureRequest,
    trained_demo: Path,
    agents: FakeAgents,
) -> Iterator[WebClient]:
    """The `client` on the trained demo project (a private copy) instead of `project`; the
    same `app` marker applies."""
    from duetml.web import create_app

    trained_app = create_app(trained_demo, **_app_options(request, agents)[0])
    yield from _web_client(request, trained_app, Project.open(trained_demo), agents)


@pytest.fixture
def ollama(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeOllamaServer]:
    """The user's own Ollama: a FakeOllamaServer on 127.0.0.1 that OLLAMA_HOST points at.
    `@pytest.mark.ollama(...)` passes the server's options (models...)."""
    from llm_fakes import FakeOllamaServer

    with FakeOllamaServer(**marker_options(request, "ollama")) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server


@pytest.fixture(scope="module")
def playwright_() -> Iterator[Playwright]:
    """Playwright's sync API, one per module (it owns the thread's event loop meanwhile).
    Skips where Debian's Chromium is missing, except in CI, where that fails: `.ci/run`
    installs it."""
    from web_helpers import CHROMIUM

    if not Path(CHROMIUM).exists():
        message = (
            f"{CHROMIUM} is missing: install Debian's `chromium` package to run the browser tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest, playwright_: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium, one per module; in a module marked `camera`, with a fake
    camera the user has allowed."""
    from web_helpers import ALLOW_CAMERA, FAKE_CAMERA, launch_chromium

    camera = request.node.get_closest_marker("camera") is not None
    launched = launch_chromium(playwright_, *((FAKE_CAMERA, ALLOW_CAMERA) if camera else ()))
    yield launched
    launched.close()


@pytest.fixture
def watch() -> Watch:
    """What the page did that the test must not let pass (attach it to each page)."""
    from web_helpers import Watch

    return Watch()


@pytest.fixture
def new_project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "proj", goal="tell hats from shoes")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, duetml_home: Path) -> None:
    """No LLM settings from the shell, nor left over by an earlier test; the session's home."""
    for name in LLM_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DUETML_HOME", str(duetml_home))


@pytest.fixture
def demo_project(tmp_path: Path) -> Project:
    """4 categories x 6 real photos, no model."""
    return make_project(tmp_path / "proj", per_category=6)


@pytest.fixture
def trained_project(trained_demo: Path) -> Project:
    """The trained demo project (a private copy), opened."""
    return Project.open(trained_demo)
