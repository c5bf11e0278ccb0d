"""Test doubles and fixtures for the agents: a provider with queued replies, demo projects.

    provider = FakeProvider()
    provider.enqueue("Try broader categories.")
    session = AgentSession(project, passive=provider, proactive=FakeProvider())
    "".join(session.ask_stream("hello"))
    provider.history[-1]        # the list of ChatMessage the agent sent

Fixtures (load with `pytest_plugins = ["agent_fakes"]`): `agents_home` (a DUETML_HOME shared by
every test of the run, so the backbone is exported to ONNX once), `clean_env` (not autouse, as
plugin fixtures apply to every module: use `pytestmark = pytest.mark.usefixtures("clean_env")`;
no real LLM settings leak in), `demo_project` (4 categories x 6 real photos,
no model), `trained_project` (the demo project, trained once per run, a private copy per test).
"""

from __future__ import annotations

import shutil
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from duetml.llm import ChatMessage, ModelInfo, Provider
from duetml.llm.base import Failure

DEMO_DATA = Path(__file__).resolve().parent.parent / "duetml" / "demo_data"
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


class FakeProvider(Provider):
    """Returns queued replies (streamed word by word) and records every request in `history`.

    `vision=False` makes it a text-only model; `base_url` decides whether it counts as local;
    `gate` (a threading.Event) holds each reply until it is set, for overlap tests.
    """

    name: ClassVar[str] = "fake"
    default_model: ClassVar[str | None] = "fake-vision"

    def __init__(
        self,
        model: str | None = None,
        *,
        vision: bool | None = True,
        base_url: str = "http://127.0.0.1:9",
        default_reply: str = "ok",
        gate: threading.Event | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, base_url=base_url, max_retries=0, **kwargs)
        self.vision = vision
        self.default_reply = default_reply
        self.gate = gate
        self.replies: deque[str | Exception] = deque()
        self.history: list[list[ChatMessage]] = []
        self.model_info_calls = 0
        self._lock = threading.Lock()

    def enqueue(self, *replies: str | Exception) -> FakeProvider:
        self.replies.extend(replies)
        return self

    @property
    def calls(self) -> int:
        return len(self.history)

    def _resolve_base_url(self, base_url: str | None, env: Mapping[str, str]) -> str | None:
        return base_url

    def _open_stream(self, messages: list[ChatMessage]) -> Iterator[str]:
        with self._lock:
            self.history.append(list(messages))
            reply = self.replies.popleft() if self.replies else self.default_reply
        if self.gate is not None:
            self.gate.wait(10)
        if isinstance(reply, Exception):
            raise reply
        words = reply.split(" ")
        for index, word in enumerate(words):
            yield word if index == 0 else " " + word

    def _list_models_once(self) -> list[ModelInfo]:
        return [ModelInfo(self.model, installed=True, vision=self.vision)]

    def _model_info_once(self) -> ModelInfo:
        self.model_info_calls += 1
        return ModelInfo(self.model, installed=True, vision=self.vision)

    def _classify(self, exc: Exception, *, mid_stream: bool) -> Failure:
        return Failure(f"The fake model failed ({exc}): try again.")


def all_text(messages: list[ChatMessage]) -> str:
    return "\n".join(m.text_with_labels() for m in messages)


def make_project(
    root: Path, per_category: int = 6, categories: list[str] | None = None, goal: str = ""
) -> Any:
    """A project from the real demo photos: `per_category` photos of each category."""
    from duetml.project import Project

    project, _ = Project.init(root, goal=goal)
    for name in categories or sorted(p.name for p in DEMO_DATA.iterdir() if p.is_dir()):
        photos = sorted((DEMO_DATA / name).glob("*.jpg"))[:per_category]
        project.add_images(name, photos)
    return project


_SHARED: dict[str, Path] = {}
_LOCK = threading.Lock()


@pytest.fixture(scope="session")
def agents_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/conftest.py's session home when there is one (one ONNX export per run), else ours."""
    try:
        return Path(request.getfixturevalue("duetml_home"))
    except pytest.FixtureLookupError:
        pass
    # A module-level memo, so test modules that each load this plugin share one folder.
    with _LOCK:
        if "home" not in _SHARED:
            _SHARED["home"] = tmp_path_factory.mktemp("duetml-home")
        return _SHARED["home"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, agents_home: Path) -> None:
    for name in LLM_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DUETML_HOME", str(agents_home))


@pytest.fixture
def demo_project(tmp_path: Path) -> Any:
    return make_project(tmp_path / "proj")


def _own_trained_template(factory: pytest.TempPathFactory) -> Path:
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    with _LOCK:
        if "trained" not in _SHARED:
            root = factory.mktemp("trained") / "demo"
            train_project(create_demo_project(root))
            _SHARED["trained"] = root
        return _SHARED["trained"]


@pytest.fixture
def trained_project(request: pytest.FixtureRequest, tmp_path: Path, clean_env: None) -> Any:
    """A private copy of the 80-photo demo project (5 test photos per category), trained once."""
    from duetml.project import Project

    try:  # tests/conftest.py trains the same demo once per run for every module
        return Project.open(request.getfixturevalue("trained_demo"))
    except pytest.FixtureLookupError:
        pass
    template = _own_trained_template(request.getfixturevalue("tmp_path_factory"))
    root = tmp_path / "trained"
    shutil.copytree(template, root, symlinks=True)
    return Project.open(root)
