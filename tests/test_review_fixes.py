"""Fixes one photo at a time: a finding's suggestion applied to the photos the user chose,
"keep as is" for chosen photos, every keep one journalled operation that undo and redo
reverse; and the same through `duetml review apply/keep --photo`. Real photos, a real model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import invoke_duetml, run_duetml
from PIL import Image

from duetml.errors import DuetmlError
from duetml.project import Project
from duetml.review import Finding, apply_finding, fixes, keep_findings, review_project


@pytest.fixture(scope="session")
def _copies_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo with two resized, re-encoded copies of one hat photo (a group of three)."""
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    project = create_demo_project(tmp_path_factory.mktemp("copies") / "demo")
    original = project.images("train", "hat")[0]
    with Image.open(original.path) as image:
        for number, scale in enumerate((0.9, 0.8), start=1):
            size = (int(image.width * scale), int(image.height * scale))
            image.convert("RGB").resize(size).save(
                project.category_dir("hat") / f"copy-{number}.jpg", quality=85
            )
    train_project(project)
    return project.root


@pytest.fixture
def project(_copies_template: Path, tmp_path: Path) -> Project:
    root = tmp_path / "demo"
    shutil.copytree(_copies_template, root, symlinks=True)
    return Project.open(root)


def files_of(project: Project) -> list[str]:
    return sorted(r.rel for r in project.images("train") + project.images("test"))


def copies(project: Project) -> Finding:
    return next(
        f
        for f in review_project(project).findings
        if f.kind == "near_duplicate" and any(p.endswith("copy-1.jpg") for p in f.photos)
    )


def test_a_suggestion_applies_to_the_chosen_photos_only(project: Project) -> None:
    before = files_of(project)
    group = copies(project)
    assert len(group.photos) == 3 and group.suggestion and group.suggestion.action == "remove"
    chosen = next(p for p in group.photos if p.endswith("copy-1.jpg"))
    assert apply_finding(project, group.id, photos=[chosen]) == (
        "Removed 1 photo (they are in the trash; undo brings them back)."
    )
    assert files_of(project) == [p for p in before if p != chosen]
    rest = copies_of_original(project, group)
    assert rest is not None and len(rest.photos) == 2 and chosen not in rest.photos
    project.undo()
    assert files_of(project) == before


def copies_of_original(project: Project, group: Finding) -> Finding | None:
    keep = [p for p in group.photos if "copy-" not in p][0]
    return next(
        (
            f
            for f in review_project(project).findings
            if f.kind == "near_duplicate" and keep in f.photos
        ),
        None,
    )


def test_without_a_choice_many_photos_are_refused(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (files_of(project), project.undo_history())
    group = copies(project)
    monkeypatch.setattr(fixes, "UNCHOSEN_LIMIT", 1)  # the group's suggestion removes 2
    with pytest.raises(DuetmlError, match=r"would remove 2 photos at once: look at them"):
        apply_finding(project, group.id)
    for bad in ([], ["train/pants/nope.jpg"], [files_of(project)[-1]]):
        with pytest.raises(DuetmlError):
            apply_finding(project, group.id, photos=bad)
        with pytest.raises(DuetmlError):
            keep_findings(project, [group.id], photos=bad)
    assert (files_of(project), project.undo_history()) == before


def test_keep_chosen_photos_is_undoable_and_redoable(project: Project) -> None:
    before = files_of(project)
    group = copies(project)
    chosen = next(p for p in group.photos if p.endswith("copy-2.jpg"))
    hidden, sentence = keep_findings(project, [group.id], photos=[chosen])
    assert (hidden, sentence) == (0, "Kept 1 photo of a finding as it is.")
    rest = copies_of_original(project, group)
    assert rest is not None and chosen not in rest.photos and len(rest.photos) == 2
    assert rest.suggestion and chosen not in rest.suggestion.photos
    assert "kept as it is" in rest.message
    assert project.undo_history()[0] == "keep 1 photo of a finding as is"
    events = [e["event"] for e in project.log.recent(5)]
    assert "keep_findings" in events

    assert project.undo() == "keep 1 photo of a finding as is"
    assert copies(project).id == group.id and set(copies(project).photos) == set(group.photos)
    project.redo()
    assert chosen not in (copies_of_original(project, group) or group).photos

    # The whole finding kept: hidden, counted; undo raises it again.
    whole = copies_of_original(project, group)
    assert whole is not None
    assert keep_findings(project, [whole.id])[0] == 1
    review = review_project(project)
    assert whole.id not in {f.id for f in review.findings} and review.dismissed >= 1
    project.undo()
    assert whole.id in {f.id for f in review_project(project).findings}
    assert files_of(project) == before  # keeping never touches a photo


def test_the_older_dismissed_file_is_still_read(project: Project) -> None:
    group = copies(project)
    state = {"ids": [group.id], "photos": {}}
    (project.state_dir / fixes.DISMISSED_FILE).write_text(json.dumps(state))
    assert group.id not in {f.id for f in review_project(project).findings}


@pytest.mark.slow  # over 1.5 s here (it reviews three times)
def test_the_review_group_passes_its_project_and_json_to_its_subcommands(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`duetml review -p DIR --json list` reviewed the current folder (an error) instead of DIR."""
    monkeypatch.chdir(tmp_path)  # not a project: only -p names one
    where = str(project.root)
    group = copies(project)
    listed = invoke_duetml("review", "-p", where, "--json", "list")
    assert listed.exit_code == 0, listed.output
    assert group.id in {f["id"] for f in json.loads(listed.stdout)["findings"]}
    kept = invoke_duetml("review", "-p", where, "keep", group.id)
    assert kept.exit_code == 0 and kept.stdout.startswith("Kept as it is"), kept.output
    assert group.id not in {f.id for f in review_project(project).findings}
    # Given after the subcommand's name, as before; -p DIR there wins over the group's.
    again = invoke_duetml("review", "-p", str(tmp_path), "list", "-p", where, "--json")
    assert again.exit_code == 0 and group.id not in again.stdout


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
def test_cli_lists_each_photo_and_applies_and_keeps_chosen_ones(project: Project) -> None:
    where = str(project.root)
    group = copies(project)
    listed = run_duetml("review", "-p", where)
    assert listed.returncode == 0, listed.stderr
    block = listed.stdout.split(f"[{group.id}]")[1].split("\n[")[0]
    for number, rel in enumerate(group.photos, start=1):
        assert f"{number}. {rel}" in block
    assert f"duetml review apply {group.id} --photo PHOTO" in block

    first, second = (p for p in group.photos if "copy-" in p)
    kept = run_duetml("review", "keep", group.id, "--photo", first, "-p", where)
    assert kept.returncode == 0 and kept.stdout == "Kept 1 photo of a finding as it is.\n"
    undone = run_duetml("undo", "-p", where)
    assert undone.returncode == 0 and "keep 1 photo" in undone.stdout
    # By its file name alone, as a person may type it.
    applied = run_duetml("review", "apply", group.id, "--photo", Path(second).name, "-p", where)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.startswith("Removed 1 photo") and second not in files_of(project)
    bad = run_duetml("review", "keep", group.id, "--photo", "train/pants/x.jpg", "-p", where)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1
    rest = copies_of_original(project, group)
    assert rest is not None
    alias = run_duetml("review", "dismiss", rest.id, "-p", where)
    assert alias.returncode == 0 and alias.stdout.startswith("Kept as it is")
