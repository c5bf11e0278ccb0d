"""Issue 12: the page's messages say what to click, never which shell command to run; the CLI
keeps its own wording (the core's error carries both)."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_helpers import WebClient

from duetml.errors import AlreadyExistsError, NotEnoughDataError
from duetml.project import Project
from duetml.training import train_project


@pytest.mark.project(per_category=2, categories=("hat", "shoes"))
@pytest.mark.app(baseline=True)
def test_rename_onto_an_existing_category_says_merge_on_the_page(client: WebClient) -> None:
    project = client.project
    # The CLI's wording names the command.
    with pytest.raises(AlreadyExistsError, match="duetml categories merge"):
        project.rename_category("hat", "shoes")
    response = client.post("/api/categories/rename", json={"old": "hat", "new": "shoes"})
    assert response.status_code == 409
    message = response.json()["error"]
    assert "Merge…" in message and "already exists" in message
    assert "duetml" not in message and "`" not in message
    assert sorted(c.name for c in Project.open(project.root).categories()) == ["hat", "shoes"]


def test_training_an_empty_project_says_what_to_do_on_the_page(tmp_path: Path) -> None:
    project, _ = Project.init(tmp_path / "empty")
    with pytest.raises(NotEnoughDataError, match="duetml add") as raised:
        train_project(project)
    assert raised.value.web is not None
    assert "duetml" not in raised.value.web and "drop photos" in raised.value.web
