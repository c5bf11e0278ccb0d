"""Plain helpers every test module may import (fixtures live in conftest.py): the demo photos
that ship with duetml, projects made from them, the shared data folder, a free port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from duetml.project import Project

if TYPE_CHECKING:
    from typer.testing import Result

DEMO_DATA = Path(__file__).resolve().parent.parent / "duetml" / "demo_data"
CATEGORIES = ("hat", "pants", "shoes", "t-shirt")  # the demo's categories
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CALTECH = SHARED_DATA / "caltech101-subset"


def need_torch() -> None:
    """Skip with a reason where PyTorch (the `torch` extra) is not installed, except in CI,
    which installs it (README: `pip install -e ".[test,torch]"`): there a missing torch fails."""
    import importlib.util

    import pytest

    missing = [
        name
        for name in ("torch", "torchvision", "efficientnet_lite_pytorch")
        if importlib.util.find_spec(name) is None
    ]
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f'needs the torch extra (`pip install -e ".[torch]"`): no {missing[0]}')


def demo_photos(category: str, count: int | None = None, skip: int = 0) -> list[Path]:
    """The demo's photos of ``category``, in a fixed order: ``count`` of them after ``skip``."""
    photos = sorted((DEMO_DATA / category).glob("*.jpg"))[skip:]
    return photos if count is None else photos[:count]


def make_project(
    root: Path, per_category: int = 0, categories: Sequence[str] = CATEGORIES, goal: str = ""
) -> Project:
    """A new project at ``root`` with ``per_category`` real demo photos of each category."""
    project, _ = Project.init(root, goal=goal)
    for name in categories if per_category else ():
        project.add_images(name, demo_photos(name, per_category))
    return project


def free_port() -> int:
    """A port on 127.0.0.1 with nothing listening (a server's, or a "connection refused")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def read_only_view(root: Path, scratch: Path) -> Iterator[Path]:
    """``root`` seen through a read-only bind mount under ``scratch`` (root may write anything
    otherwise); the calling test is skipped where a bind mount cannot be made."""
    import pytest

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only view of the project needs root (mount --bind, remount ro)")
    view = scratch / "read-only-view"
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(root), str(view)], check=False).returncode != 0:
        pytest.skip("bind mounts are not available here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def run_duetml(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real `duetml` command in a subprocess (it inherits PYTHONPATH), through `main()` as
    the installed script runs it: exit codes and output as a person or a script sees them.
    ``env`` adds to the environment."""
    return subprocess.run(
        [sys.executable, "-c", "from duetml.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def invoke_duetml(*args: str, input: str | None = None) -> Result:
    """The `duetml` command in this process (Typer's CliRunner): quicker than run_duetml, and
    the test's monkeypatches apply."""
    from typer.testing import CliRunner

    from duetml.cli import app

    return CliRunner().invoke(app, list(args), input=input)
