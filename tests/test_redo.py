"""Redo (issue 12): after an undo, do the change again, until a new change is made. Redo is
written ahead and committed in one atomic write like undo, so a killed redo never breaks
either list."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import demo_photos, run_duetml

from duetml.errors import NothingToRedoError, UndoSkippedError
from duetml.project import Project


def _state(project: Project) -> dict[str, bytes]:
    """Every photo of the project (train and test) by its place, with its content."""
    return {r.rel: r.path.read_bytes() for r in project.images("train") + project.images("test")}


def _categories(project: Project) -> list[str]:
    return [c.name for c in project.categories()]


@pytest.mark.slow
def test_each_kind_of_change_undone_and_redone_ends_where_it_was(new_project: Project) -> None:
    project = new_project
    project.add_images("hat", demo_photos("hat")[:4])
    project.add_images("shoes", demo_photos("shoes")[:3])
    hat = sorted(r.rel for r in project.images("train", "hat"))
    changes: list[Callable[[], object]] = [
        lambda: project.move_images(hat[:1], "brand new"),  # makes a category
        lambda: project.rename_category("shoes", "boots"),
        lambda: project.merge_categories(["hat", "brand new"], "headwear"),
        lambda: project.remove_category("boots"),
        lambda: project.add_categories(["empty one", "empty two"]),
        lambda: project.remove_images([project.images("train", "headwear")[0].rel]),
        lambda: project.add_images("pants", demo_photos("pants")[:2]),
    ]
    for change in changes:
        before = (_state(project), _categories(project))
        change()
        after = (_state(project), _categories(project))
        summary = project.undo_history()[0]
        assert project.undo() == summary
        assert (_state(project), _categories(project)) == before
        assert project.redo_history() == [summary]
        assert project.redo() == summary
        assert (_state(project), _categories(project)) == after
        assert project.redo_history() == [] and project.undo_history()[0] == summary
    # The whole history undoes to nothing and redoes back, in order.
    end = (_state(project), _categories(project))
    undone = [project.undo() for _ in range(len(changes) + 2)]
    assert _state(project) == {} and _categories(project) == []
    redone = [project.redo() for _ in undone]
    assert redone == undone[::-1]
    assert (_state(project), _categories(project)) == end


def test_a_new_change_ends_redo_and_nothing_to_redo_says_so(new_project: Project) -> None:
    new_project.add_images("hat", demo_photos("hat")[:2])
    new_project.add_images("shoes", demo_photos("shoes")[:2])
    new_project.undo()
    assert new_project.redo_history() == ["add 2 image(s) to 'shoes'"]
    new_project.add_category("bags")
    assert new_project.redo_history() == []
    with pytest.raises(NothingToRedoError, match="nothing to redo"):
        new_project.redo()
    assert new_project.undo_history() == ["add category 'bags'", "add 2 image(s) to 'hat'"]
    # The photos the undo took away stay in the trash: nothing is lost with the redo list.
    assert len(list((new_project.state_dir / "trash").rglob("*.jpg"))) == 2


def test_redo_of_add_move_takes_the_photos_again_only_if_unchanged(
    new_project: Project, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i, photo in enumerate(demo_photos("hat")[:3]):
        shutil.copy(photo, inbox / f"p{i}.jpg")
    new_project.add_images("hat", [inbox], move=True)
    new_project.undo()
    assert sorted(p.name for p in inbox.iterdir()) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    replaced = inbox / "p1.jpg"
    replaced.write_bytes(b"the user's own new file, not the photo")
    new_project.redo()
    # Two unchanged photos were taken in again; the replaced file was left alone.
    assert sorted(p.name for p in inbox.iterdir()) == ["p1.jpg"]
    assert replaced.read_bytes() == b"the user's own new file, not the photo"
    assert len(new_project.images("train", "hat")) == 2
    new_project.undo()  # and they go back out again
    assert sorted(p.name for p in inbox.iterdir()) == ["p0.jpg", "p1.jpg", "p2.jpg"]


def test_a_redo_record_from_elsewhere_cannot_take_files_from_outside(
    new_project: Project, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.jpg"
    shutil.copy(demo_photos("hat")[0], victim)
    new_project.add_images("hat", demo_photos("hat")[1:2])
    new_project.undo()
    entries = json.loads(new_project.journal.path.read_text())
    record = entries[-1]
    trash_rel = record["moves"][0][1]
    (new_project.root / trash_rel).unlink()
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    record["returned"] = {trash_rel: [str(victim), "0" * 64, digest]}  # not signed by us
    new_project.journal.path.write_text(json.dumps(entries))
    new_project.redo()
    assert victim.is_file() and new_project.images("train", "hat") == []


def test_a_damaged_redo_record_is_skipped_with_a_sentence(new_project: Project) -> None:
    new_project.add_images("hat", demo_photos("hat")[:2])
    new_project.add_images("shoes", demo_photos("shoes")[:2])
    new_project.undo()
    new_project.undo()
    entries = json.loads(new_project.journal.path.read_text())
    entries[-1]["moves"] = "damaged"  # the newest redo: the add of 'hat'
    new_project.journal.path.write_text(json.dumps(entries))
    with pytest.raises(UndoSkippedError, match="cannot be redone") as caught:
        new_project.redo()
    assert "duetml" not in (caught.value.web or "duetml")
    assert new_project.redo() == "add 2 image(s) to 'shoes'"
    assert len(new_project.images("train", "shoes")) == 2


REDOER = """
import sys
from duetml.project import Project
project = Project.open(sys.argv[1])
print("ready", flush=True)
getattr(project, sys.argv[2])()
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkill_during_redo_and_undo_never_breaks_either(new_project: Project) -> None:
    """Killed at random moments, a redo (and the undo of it) is whole or not there at all:
    the photos are either all back or all in the trash, and both lists stay usable."""
    new_project.add_images("older", demo_photos("hat")[:5])
    older = _state(new_project)
    sources = [p for c in ("pants", "shoes", "t-shirt") for p in demo_photos(c)]
    new_project.add_images("mixed", sources)
    full = _state(new_project)
    new_project.undo()
    summary = f"add {len(sources)} image(s) to 'mixed'"

    def run(action: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", REDOER, str(new_project.root), action],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        return process

    # How long a whole redo takes here: the kills land within that span.
    began = time.perf_counter()
    run("redo").wait(120)
    whole = time.perf_counter() - began
    Project.open(new_project.root).undo()
    rng = random.Random(12)
    outcomes = {"killed": 0, "finished": 0}
    for _ in range(10):
        undone = Project.open(new_project.root)
        assert _state(undone) == older and undone.redo_history() == [summary]
        process = run("redo")
        time.sleep(rng.uniform(0.05, 0.9) * whole)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        reopened = Project.open(new_project.root)
        assert not reopened.journal.pending_path.exists()
        if _state(reopened) == older:
            outcomes["killed"] += 1
            assert reopened.redo_history() == [summary]
            assert reopened.undo_history() == ["add 5 image(s) to 'older'"]
        else:
            outcomes["finished"] += 1
            assert _state(reopened) == full
            assert reopened.undo_history()[0] == summary and reopened.redo_history() == []
            # And an undo killed at a random moment, the same way.
            process = run("undo")
            time.sleep(rng.uniform(0.05, 0.9) * whole)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            again = Project.open(new_project.root)
            assert _state(again) in (older, full)
            if _state(again) == full:
                assert again.undo_history()[0] == summary
                again.undo()
    assert outcomes["killed"] > 0
    final = Project.open(new_project.root)
    assert final.redo() == summary and _state(final) == full
    assert final.undo() == summary and final.undo() == "add 5 image(s) to 'older'"
    assert _state(final) == {}


@pytest.mark.slow
def test_cli_undo_says_what_redo_would_do_and_redo_does_it(new_project: Project) -> None:
    root = str(new_project.root)
    new_project.add_images("hat", demo_photos("hat")[:2])
    new_project.move_images([new_project.images("train", "hat")[0].rel], "cap")
    result = run_duetml("undo", "-p", root)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "Undone: move 1 image(s) to 'cap'",
        "(`duetml redo` would move 1 image(s) to 'cap' again.)",
    ]
    assert run_duetml("redo", "--list", "-p", root).stdout.strip() == "move 1 image(s) to 'cap'"
    result = run_duetml("redo", "-p", root)
    assert result.stdout.strip() == "Redone: move 1 image(s) to 'cap'"
    assert len(new_project.images("train", "cap")) == 1
    result = run_duetml("redo", "-p", root)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nothing to redo" in result.stderr
    assert run_duetml("redo", "--list", "-p", root).stdout.strip() == "(nothing to redo)"
