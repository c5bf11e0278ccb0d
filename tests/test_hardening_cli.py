"""Sentences, not tracebacks (issue 7, item 5): a malformed format setting, and a read-only
project on which reading commands still work and say the log was not written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import demo_photos, read_only_view

from duetml.errors import DuetmlError, ProjectTooNewError
from duetml.project import Project


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from duetml.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("value", ['"1"', "true", "0", "1.5", "[1]"])
def test_a_malformed_format_is_a_malformed_setting_not_a_newer_duetml(
    new_project: Project, value: str
) -> None:
    settings = new_project.root / "duetml.toml"
    text = settings.read_text()
    settings.write_text(text.replace("format = 1", f"format = {value}"))
    with pytest.raises(DuetmlError, match="malformed setting: format") as caught:
        Project.open(new_project.root)
    assert not isinstance(caught.value, ProjectTooNewError)
    assert "newer" not in str(caught.value)


def test_a_newer_format_is_still_a_newer_duetml(new_project: Project) -> None:
    settings = new_project.root / "duetml.toml"
    settings.write_text(settings.read_text().replace("format = 1", "format = 2"))
    with pytest.raises(ProjectTooNewError, match="newer duetml"):
        Project.open(new_project.root)


@pytest.fixture
def read_only_demo(trained_demo: Path, tmp_path: Path) -> Iterator[Path]:
    """The trained demo project through a read-only bind mount (root writes anything else)."""
    with read_only_view(trained_demo, tmp_path) as view:
        yield view


@pytest.mark.slow
def test_predict_and_eval_work_on_a_read_only_project(read_only_demo: Path) -> None:
    log = read_only_demo / ".duetml" / "events.jsonl"
    before = log.read_bytes()
    photo = str(demo_photos("hat")[-1])
    predicted = _cli("predict", photo, "-p", str(read_only_demo))
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(photo) and "%" in predicted.stdout
    evaluated = _cli("eval", "-p", str(read_only_demo))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "ccuracy" in evaluated.stdout
    for result in (predicted, evaluated):
        assert "interaction log was not written" in result.stderr
        assert "Traceback" not in result.stderr
    assert log.read_bytes() == before
    changed = _cli("categories", "add", "new", "-p", str(read_only_demo))
    assert changed.returncode != 0 and "Traceback" not in changed.stderr
    assert "read-only" in changed.stderr.lower()
