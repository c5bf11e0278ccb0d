"""The demo project: real CC0 photos of clothing that ship inside the package."""

from __future__ import annotations

from pathlib import Path

from duetml.errors import AlreadyExistsError
from duetml.project import Project
from duetml.settings import SETTINGS_FILE

DEMO_DATA = Path(__file__).parent / "demo_data"
DEMO_GOAL = "Sort photos of my clothes by type so I can catalogue my wardrobe."
# Five photos per category go to the held-out test set, so `eval` measures real generalisation.
TEST_PER_CATEGORY = 5


def create_demo_project(folder: Path) -> Project:
    project, _ = Project.init(folder, goal=DEMO_GOAL)
    for category_dir in sorted(p for p in DEMO_DATA.iterdir() if p.is_dir()):
        photos = sorted(category_dir.iterdir())
        project.add_images(category_dir.name, photos[TEST_PER_CATEGORY:])
        project.add_images(category_dir.name, photos[:TEST_PER_CATEGORY], split="test")
    (project.root / "CREDITS.txt").write_text((DEMO_DATA / "CREDITS.txt").read_text())
    return project


def open_or_create_demo_project(folder: Path) -> tuple[Project, bool]:
    """The demo project in `folder`: made there, or the one an earlier `duetml demo` made
    (then True: running the demo twice trains and evaluates it again instead of failing)."""
    if (Path(folder) / SETTINGS_FILE).exists():
        project = Project.open(folder)
        if project.goal != DEMO_GOAL:
            raise AlreadyExistsError(
                f"{folder} is already a duetml project, not a demo: run `duetml demo OTHER_DIR` "
                "to make the demo in another folder."
            )
        return project, True
    return create_demo_project(folder), False
