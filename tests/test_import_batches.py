"""Imports write photos in batches (one journal flush, files flushed together) and stay whole:
all photos and one undoable change, or, after a failure in any batch, nothing at all."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from helpers import CATEGORIES, demo_photos, make_project

from duetml import atomic, importing
from duetml.errors import DiskFullError


def _all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_write_many_writes_every_file_and_leaves_no_temp(tmp_path: Path) -> None:
    files = [(tmp_path / f"folder{i % 3}" / f"f{i}.bin", bytes([i]) * (i + 1)) for i in range(20)]
    atomic.write_many(files)
    for path, data in files:
        assert path.read_bytes() == data
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_write_many_removes_its_temps_when_it_fails(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("in the way")
    files = [(tmp_path / "ok" / "one.bin", b"1"), (tmp_path / "a-file" / "two.bin", b"2")]
    with pytest.raises(OSError):
        atomic.write_many(files)
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert not (tmp_path / "ok" / "one.bin").exists()  # nothing was renamed into place


@pytest.mark.slow
def test_an_import_of_several_batches_is_one_undoable_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "IMPORT_BATCH", 16)
    project = make_project(tmp_path / "p")
    photos = [p for c in CATEGORIES for p in demo_photos(c)]
    report = project.add_images("things", photos)
    assert len(report.added) == len(photos) == 100 and not report.rejected
    stored = project.images("train", "things")
    assert len(stored) == 100
    assert not [p for p in project.root.rglob("*.tmp")]
    project.undo()
    assert "things" not in project.category_names() and not project.images("train")


def test_a_failure_in_a_later_batch_leaves_the_project_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "IMPORT_BATCH", 16)
    project = make_project(tmp_path / "p", per_category=2)
    before = _all_files(project.root / "train")
    history = project.undo_history()
    real = atomic.write_many
    calls = []

    def full_disk_on_the_third(files, workers=8):  # type: ignore[no-untyped-def]
        calls.append(len(files))
        if len(calls) == 3:
            real(files[:5], workers)  # part of the batch reaches the disk, then it is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(files, workers)

    monkeypatch.setattr(atomic, "write_many", full_disk_on_the_third)
    photos = [p for c in CATEGORIES for p in demo_photos(c, skip=2)]
    with pytest.raises(DiskFullError, match="project is as it was"):
        project.add_images("things", photos)
    assert len(calls) == 3
    assert _all_files(project.root / "train") == before
    assert not (project.root / "train" / "things").exists()
    assert project.undo_history() == history
    assert not [p for p in project.root.rglob("*.tmp")]
