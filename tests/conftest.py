"""Shared fixtures. Every test runs with DUETML_HOME in a temp folder, never the real home,
and without the LLM settings of the shell that started it (`clean_env`).

One DUETML_HOME serves the whole session so the backbone's one-time ONNX export (a few
seconds) is paid once; tests that need a pristine home make their own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import make_project
from hypothesis import settings

from duetml.project import Project

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
