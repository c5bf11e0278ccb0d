"""Project folders: init, import, categories, undo, status; nothing is ever lost."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from helpers import demo_photos
from PIL import Image

from duetml.errors import (
    AlreadyExistsError,
    InvalidNameError,
    NotAProjectError,
    NotFoundError,
    NothingToUndoError,
    ProjectTooNewError,
)
from duetml.health import project_health
from duetml.project import Project


def _all_files(project: Project) -> set[bytes]:
    """Content of every photo anywhere in the project (data and trash): nothing may vanish."""
    return {p.read_bytes() for p in project.root.rglob("*.jpg")}


def test_init_makes_a_plain_folder(tmp_path: Path) -> None:
    project, report = Project.init(tmp_path / "p", goal="edible or not")
    assert report is None
    assert (tmp_path / "p" / "duetml.toml").read_text().count("edible or not") == 1
    assert (tmp_path / "p" / "train").is_dir() and (tmp_path / "p" / ".duetml").is_dir()
    assert Project.open(tmp_path / "p").goal == "edible or not"
    with pytest.raises(AlreadyExistsError):
        Project.init(tmp_path / "p")


def test_init_refuses_a_non_empty_folder_without_from(tmp_path: Path) -> None:
    (tmp_path / "stuff.txt").write_text("mine")
    with pytest.raises(Exception, match="not empty"):
        Project.init(tmp_path)
    assert (tmp_path / "stuff.txt").read_text() == "mine"


def test_init_from_dataset_copies_images_and_reports_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "dataset"
    for category in ("hat", "shoes"):
        (source / category).mkdir(parents=True)
        for photo in demo_photos(category)[:4]:
            shutil.copy(photo, source / category / photo.name)
    (source / "hat" / "notes.jpg").write_text("not a photo")
    (source / "stray.csv").write_text("a,b")
    before = sorted(p.name for p in source.rglob("*"))
    project, report = Project.init(tmp_path / "p", from_source=source)
    assert [c.name for c in project.categories()] == ["hat", "shoes"]
    assert [c.count for c in project.categories()] == [4, 4]
    assert report is not None
    reasons = {r.source: r.reason for r in report.rejected}
    assert "not an image" in reasons[str(source / "hat" / "notes.jpg")]
    assert str(source / "stray.csv") in reasons
    assert sorted(p.name for p in source.rglob("*")) == before  # the source is untouched


def test_init_from_dataset_with_train_and_test(tmp_path: Path) -> None:
    source = tmp_path / "dataset"
    for split, photos in (("train", slice(0, 6)), ("test", slice(6, 8))):
        for category in ("hat", "pants"):
            (source / split / category).mkdir(parents=True)
            for photo in demo_photos(category)[photos]:
                shutil.copy(photo, source / split / category / photo.name)
    project, _ = Project.init(tmp_path / "p", from_source=source)
    assert [(c.name, c.count, c.test_count) for c in project.categories()] == [
        ("hat", 6, 2),
        ("pants", 6, 2),
    ]


def test_init_from_dataset_is_one_undoable_step(tmp_path: Path) -> None:
    source = tmp_path / "dataset"
    for split, photos in (("train", slice(0, 5)), ("test", slice(5, 7))):
        for category in ("hat", "pants", "shoes"):
            (source / split / category).mkdir(parents=True)
            for photo in demo_photos(category)[photos]:
                shutil.copy(photo, source / split / category / photo.name)
    project, report = Project.init(tmp_path / "p", from_source=source)
    assert report is not None and len(report.added) == 21
    assert project.undo_history() == ["import 21 image(s) in 3 categories from 'dataset'"]
    undone = project.undo()
    assert "import 21 image(s)" in undone
    assert [(c.count, c.test_count) for c in project.categories()] == []
    assert project.undo_history() == []
    project.redo()  # and back, in one step too
    assert [(c.name, c.count, c.test_count) for c in project.categories()] == [
        ("hat", 5, 2),
        ("pants", 5, 2),
        ("shoes", 5, 2),
    ]


def test_add_decodes_skips_duplicates_and_never_touches_sources(
    new_project: Project, tmp_path: Path
) -> None:
    photos = demo_photos("hat")[:3]
    originals = {p: p.read_bytes() for p in photos}
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(photos[0].read_bytes()[:500])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    report = new_project.add_images(
        "hat", [*photos, photos[0], corrupt, empty, tmp_path / "missing.jpg"]
    )
    assert len(report.added) == 3
    assert [d.source for d in report.duplicates] == [str(photos[0])]
    rejected = {r.source: r.reason for r in report.rejected}
    assert "truncated" in rejected[str(corrupt)] and "empty" in rejected[str(empty)]
    assert "does not exist" in rejected[str(tmp_path / "missing.jpg")]
    assert all(p.read_bytes() == data for p, data in originals.items())
    # Stored names come from the content hash, with the decoded format's extension.
    for rel in report.added:
        assert len(Path(rel).stem) == 20 and rel.endswith(".jpg")
    again = new_project.add_images("hat", photos)
    assert not again.added and len(again.duplicates) == 3


def test_add_png_named_jpg_is_stored_with_its_real_extension(
    new_project: Project, tmp_path: Path
) -> None:
    fake = tmp_path / "photo.jpg"
    Image.open(demo_photos("pants")[0]).save(fake, "PNG")
    report = new_project.add_images("pants", [fake])
    assert report.added[0].endswith(".png")


def test_add_move_moves(new_project: Project, tmp_path: Path) -> None:
    photo = tmp_path / "x.jpg"
    shutil.copy(demo_photos("shoes")[0], photo)
    new_project.add_images("shoes", [photo], move=True)
    assert not photo.exists()
    assert new_project.categories()[0].count == 1


def test_add_skips_symlinks(new_project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(demo_photos("hat")[0], folder / "a.jpg")
    (folder / "link.jpg").symlink_to(demo_photos("hat")[1])
    report = new_project.add_images("hat", [folder])
    assert len(report.added) == 1 and report.skipped_links == [str(folder / "link.jpg")]


def test_every_category_operation_can_be_undone(new_project: Project) -> None:
    p = new_project
    p.add_images("carrot", demo_photos("hat")[:3])
    p.add_images("tomato", demo_photos("pants")[:2])
    p.add_images("rose", demo_photos("shoes")[:2])
    p.add_category("empty one")
    everything = _all_files(p)

    def names() -> list[tuple[str, int]]:
        return [(c.name, c.count) for c in p.categories()]

    start = names()
    p.rename_category("rose", "flower")
    assert ("flower", 2) in names() and "rose" not in dict(names())
    p.merge_categories(["carrot", "tomato"], "edible")
    assert dict(names())["edible"] == 5 and "carrot" not in dict(names())
    flower_photo = p.images("train", "flower")[0].rel
    p.move_images([flower_photo], "edible")
    assert dict(names())["edible"] == 6
    p.remove_images([p.images("train", "edible")[0].rel])
    p.remove_category("flower")
    assert "flower" not in dict(names())
    assert _all_files(p) == everything  # removed photos sit in the trash
    for _ in range(5):
        p.undo()
    assert names() == start
    assert _all_files(p) == everything
    p.undo()  # the empty category
    assert "empty one" not in dict(names())
    p.undo()  # the add of rose: its photos go to the trash, not away
    assert "rose" not in dict(names())
    assert _all_files(p) == everything


def test_undo_with_nothing_to_undo(new_project: Project) -> None:
    with pytest.raises(NothingToUndoError):
        new_project.undo()


def test_rename_onto_an_existing_category_is_refused(new_project: Project) -> None:
    new_project.add_images("a", demo_photos("hat")[:1])
    new_project.add_images("b", demo_photos("pants")[:1])
    with pytest.raises(AlreadyExistsError, match="merge"):
        new_project.rename_category("a", "b")


@pytest.mark.parametrize("name", ["..", "a/b", "x" * 300, "CON", "bad\x01name", "back\\slash"])
def test_hostile_category_names_change_nothing(new_project: Project, name: str) -> None:
    before = sorted(p.name for p in new_project.root.rglob("*"))
    with pytest.raises(InvalidNameError):
        new_project.add_images(name, demo_photos("hat")[:1])
    with pytest.raises(InvalidNameError):
        new_project.add_category(name)
    assert sorted(p.name for p in new_project.root.rglob("*")) == before


def test_image_ids_cannot_escape_the_project(new_project: Project) -> None:
    for rel in (
        "../duetml.toml",
        "train/../duetml.toml",
        "/etc/passwd",
        "train/hat/../../duetml.toml",
    ):
        with pytest.raises((InvalidNameError, NotFoundError)):
            new_project.image(rel)


def test_symlinked_categories_and_photos_are_ignored(new_project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(demo_photos("hat")[0], outside / "secret.jpg")
    (new_project.root / "train" / "linked").symlink_to(outside)
    new_project.add_images("real", demo_photos("pants")[:1])
    (new_project.root / "train" / "real" / "link.jpg").symlink_to(outside / "secret.jpg")
    assert [c.name for c in new_project.categories()] == ["real"]
    assert [r.path.name for r in new_project.images()] == [Path(new_project.images()[0].rel).name]
    kinds = {w.kind for w in project_health(new_project).warnings}
    assert "symlink" in kinds


def test_not_a_project_and_too_new(tmp_path: Path) -> None:
    with pytest.raises(NotAProjectError, match="duetml init"):
        Project.open(tmp_path)
    project, _ = Project.init(tmp_path / "p")
    (project.root / "duetml.toml").write_text("format = 99\n")
    with pytest.raises(ProjectTooNewError, match="upgrade"):
        Project.open(project.root)


def test_status_warns_about_what_hurts_a_model(new_project: Project, tmp_path: Path) -> None:
    p = new_project
    p.add_images("big", demo_photos("hat") + demo_photos("pants"))
    p.add_images("small", demo_photos("shoes")[:2])
    p.add_category("nothing")
    # The same photo in two categories, and a corrupt one, put there with a file manager.
    shutil.copy(demo_photos("hat")[0], p.root / "train" / "small" / "copy.jpg")
    (p.root / "train" / "small" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (p.root / "train" / "notes.txt").write_text("x")
    warnings = {w.kind: w.message for w in project_health(p).warnings}
    assert "'nothing' has no photos" in warnings["empty"]
    assert "'small' has only 4" in warnings["tiny"]
    assert "imbalanced" in warnings["imbalance"]
    assert "same photo" in warnings["duplicate"]
    assert "broken.jpg" in warnings["unreadable"]
    assert "notes.txt" in warnings["stray_file"]


def test_status_says_when_the_model_is_older_than_the_data(trained_demo: Path) -> None:
    project = Project.open(trained_demo)
    assert not any(w.kind == "stale_model" for w in project_health(project).warnings)
    project.remove_images([project.images("train", "hat")[0].rel])
    assert any(w.kind == "stale_model" for w in project_health(project).warnings)


def test_operations_are_logged(new_project: Project) -> None:
    new_project.add_images("hat", demo_photos("hat")[:1])
    new_project.rename_category("hat", "cap")
    new_project.undo()
    events = [e["event"] for e in new_project.log.recent()]
    assert events == ["init", "add_images", "rename_category", "undo"]


def test_upload_bytes_path(new_project: Project) -> None:
    good = demo_photos("hat")[0].read_bytes()
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, "PNG")
    new_project.add_category("hat")
    report = new_project.add_image_bytes(
        "hat", [("a.jpg", good), ("b.png", buffer.getvalue()), ("c.jpg", b"junk")]
    )
    assert len(report.added) == 2 and report.rejected[0].source == "c.jpg"
    with pytest.raises(NotFoundError):
        new_project.add_image_bytes("nope", [("a.jpg", good)])
