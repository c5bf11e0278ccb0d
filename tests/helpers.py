"""Plain helpers every test module may import (fixtures live in conftest.py): the demo photos
that ship with duetml, projects made from them, the shared data folder, a free port."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from duetml.project import Project

DEMO_DATA = Path(__file__).resolve().parent.parent / "duetml" / "demo_data"
CATEGORIES = ("hat", "pants", "shoes", "t-shirt")  # the demo's categories
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CALTECH = SHARED_DATA / "caltech101-subset"


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
