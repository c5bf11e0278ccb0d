"""Bringing photos into a project: one pipeline for `duetml add`, the page's uploads and
`duetml init --from` (a folder of category folders).

Every photo is decoded before it is stored (a few ahead, on two threads), stored under a name
made from its content, never twice (by content, across train and test), and written in
batches. One import is one undoable operation under the data lock, however many categories it
fills; `--move` removes the originals only once that operation is committed. Each category
folder filled gets one `add_images` event in the interaction log.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from duetml import images
from duetml.errors import BadImageError, InvalidNameError, NotFoundError
from duetml.names import validate_category_name

if TYPE_CHECKING:
    from duetml.journal import Operation
    from duetml.project import Project

# Photos an import writes together: their journal intents in one flush, their files flushed
# together (atomic.write_many). Measured: importing 428 Caltech photos one flush at a time took
# 17 s, 12 s of it in fsync.
IMPORT_BATCH = 64
# Files at the top of a dataset folder that are not photos and not worth a warning.
_DATASET_EXTRAS = {"readme.txt", "readme.md", "manifest.tsv", "license"}


class Duplicate(msgspec.Struct):
    source: str  # the file as given (a path, or an uploaded file's name)
    existing: str  # the project's photo with the same content


class Rejected(msgspec.Struct):
    source: str
    reason: str


class AddReport(msgspec.Struct):
    """`duetml add --json` (and `init --from --json`'s import), and POST /api/upload's answer."""

    added: list[str]
    duplicates: list[Duplicate]
    rejected: list[Rejected]
    skipped_links: list[str]

    @classmethod
    def empty(cls) -> AddReport:
        return cls([], [], [], [])


@dataclass
class _Folder:
    """Photos bound for one category folder of one split, and what became of them."""

    split: str
    category: str
    items: list[tuple[Path | bytes, str]]  # (a file or uploaded bytes, its name for the report)
    report: AddReport


def add_files(
    project: Project,
    category: str,
    sources: Iterable[Path],
    *,
    move: bool = False,
    split: str = "train",
    create: bool = True,
) -> AddReport:
    """Import files and folders (recursively) into one category."""
    category = validate_category_name(category)
    files, report = expand_sources(sources)
    items: list[tuple[Path | bytes, str]] = [(f, str(f)) for f in files]
    return _add(project, _Folder(split, category, items, report), move=move, create=create)


def add_uploads(
    project: Project, category: str, items: Iterable[tuple[str, bytes]], split: str = "train"
) -> AddReport:
    """Import uploaded files (name, content) from the web UI; names are only for reports.
    The category must exist; its test folder is made with its first test photo."""
    category = validate_category_name(category)
    uploads: list[tuple[Path | bytes, str]] = [(data, name) for name, data in items]
    create = split == "test" and project.split_dir("train").joinpath(category).is_dir()
    return _add(
        project, _Folder(split, category, uploads, AddReport.empty()), move=False, create=create
    )


def _add(project: Project, folder: _Folder, *, move: bool, create: bool) -> AddReport:
    target_dir = project.category_dir(folder.category, folder.split, must_exist=False)
    if not target_dir.is_dir() and not create:
        raise NotFoundError(f"There is no category {folder.category!r}: add it first.")
    category = folder.category
    _import(
        project,
        [folder],
        f"add image(s) to {category!r}",
        lambda: f"add {len(folder.report.added)} image(s) to {category!r}",
        move=move,
    )
    return folder.report


def import_dataset(project: Project, source: Path) -> AddReport:
    """Copy a folder-of-folders dataset (optionally with train/ and test/ inside)."""
    source = Path(source)
    if not source.is_dir():
        raise NotFoundError(
            f"{source} is not a folder: point `--from` at a folder of category folders."
        )
    total = AddReport.empty()
    folders = []
    for split, name, path in _dataset_folders(project, source, total):
        files, report = expand_sources([path])
        folders.append(_Folder(split, name, [(f, str(f)) for f in files], report))

    def summary() -> str:
        added = sum(len(f.report.added) for f in folders)
        categories = len({f.category for f in folders})
        return f"import {added} image(s) in {categories} categories from {source.name!r}"

    # One operation for the whole dataset: one Undo takes the import back, not one
    # category at a time (100 steps for a 100-category dataset).
    _import(project, folders, f"import {source.name}", summary, move=False)
    for folder in folders:
        total.added += folder.report.added
        total.duplicates += folder.report.duplicates
        total.rejected += folder.report.rejected
        total.skipped_links += folder.report.skipped_links
    return total


def _dataset_folders(
    project: Project, source: Path, total: AddReport
) -> list[tuple[str, str, Path]]:
    """(split, category, folder) of each category folder in `source`; links and stray files
    go to `total`."""
    from duetml.project import SPLITS

    layouts = [(s, source / s) for s in SPLITS if (source / s).is_dir()] or [("train", source)]
    folders: list[tuple[str, str, Path]] = []  # (split, category, folder)
    for split, folder in layouts:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_symlink():
                total.skipped_links.append(entry.path)
                continue
            if not entry.is_dir():
                if not entry.name.startswith(".") and entry.name.lower() not in _DATASET_EXTRAS:
                    total.rejected.append(
                        Rejected(entry.path, "is a file outside any category folder.")
                    )
                continue
            try:
                name = validate_category_name(entry.name)
            except InvalidNameError as exc:
                total.rejected.append(Rejected(entry.path, str(exc)))
                continue
            folders.append((split, name, Path(entry.path)))
    return folders


def _import(
    project: Project,
    folders: list[_Folder],
    summary: str,
    final_summary: Callable[[], str],
    *,
    move: bool,
) -> None:
    """The pipeline: every folder's photos stored as steps of one undoable operation, under
    the data lock; then the originals of a move removed and one log event per folder."""
    taken_from: list[Path] = []
    with project.data_lock():
        # Under the lock, so two imports of the same photos never both add them.
        known = project.known_hashes()
        with project.journal.operation("add_images", summary) as change:
            for folder in folders:
                target_dir = project.category_dir(folder.category, folder.split, must_exist=False)
                _store(project, change, target_dir, folder, move, known, taken_from)
            change.summary = final_summary()
    # `--move` removes the originals only once the import is committed: a failure before
    # that leaves them where they were.
    for original in taken_from:
        with contextlib.suppress(OSError):
            os.unlink(original)
    for folder in folders:
        report = folder.report
        project.log.record(
            "add_images",
            category=folder.category,
            split=folder.split,
            added=len(report.added),
            duplicates=len(report.duplicates),
            rejected=len(report.rejected),
            # Where the kept copy of each skipped duplicate is, so nothing vanishes unexplained.
            skipped_duplicates=[
                {"source": d.source, "kept": d.existing} for d in report.duplicates[:100]
            ],
        )


def _store(
    project: Project,
    change: Operation,
    target_dir: Path,
    folder: _Folder,
    move: bool,
    known: dict[str, str],
    taken_from: list[Path],
) -> None:
    """Decode, dedupe and write the folder's photos into `target_dir` as steps of `change`
    (the caller holds the data lock and the operation: an import of many folders is one)."""
    items, report = folder.items, folder.report
    if not target_dir.is_dir():
        change.make_dir(target_dir)
    batch: list[tuple[Path, bytes, Path | None]] = []
    for (item, label), (data, facts, reason) in zip(items, _checked_ahead(items), strict=True):
        if data is None or facts is None:
            report.rejected.append(Rejected(str(label), reason or "cannot be read."))
            continue
        digest = images.content_hash(data)
        if digest in known:
            report.duplicates.append(Duplicate(str(label), known[digest]))
            continue
        # The stored name comes from the content, never from the user (security.md 4).
        destination = target_dir / f"{digest[:20]}{facts.extension}"
        if destination.exists() or destination.is_symlink():
            # Same content already there (a stale hash index): never overwrite.
            report.duplicates.append(Duplicate(str(label), _rel(project, destination)))
            continue
        origin = None
        if move and not isinstance(item, bytes):
            origin = Path(item).absolute()
            taken_from.append(origin)
        batch.append((destination, data, origin))
        rel = _rel(project, destination)
        known[digest] = rel
        report.added.append(rel)
        if len(batch) >= IMPORT_BATCH:
            change.create_many(batch)
            batch = []
    change.create_many(batch)


def _read_and_check(item: Path | bytes) -> tuple[bytes | None, images.ImageFacts | None, str]:
    """(content, facts, "") for a photo duetml can store, else (None, None, the reason)."""
    try:
        data = item if isinstance(item, bytes) else Path(item).read_bytes()
        if images.is_heif(data[:12]):
            data = images.heif_to_jpeg(data)
        return data, images.check_image(data), ""
    except BadImageError as exc:
        return None, None, str(exc)
    except OSError as exc:
        return None, None, f"cannot be read ({exc.strerror})."


def _checked_ahead(
    items: list[tuple[Any, str]],
) -> Iterator[tuple[bytes | None, images.ImageFacts | None, str]]:
    """`_read_and_check` of each item, in order, computed a few items ahead on two threads
    (Pillow decodes without the GIL). The look-ahead is bounded: never all photos in memory."""
    from concurrent.futures import Future, ThreadPoolExecutor

    window = 16
    with ThreadPoolExecutor(2) as pool:
        ahead: list[Future[tuple[bytes | None, images.ImageFacts | None, str]]] = []
        for index in range(len(items)):
            while len(ahead) < window and index + len(ahead) < len(items):
                ahead.append(pool.submit(_read_and_check, items[index + len(ahead)][0]))
            yield ahead.pop(0).result()


def expand_sources(sources: Iterable[Path]) -> tuple[list[Path], AddReport]:
    """Files given directly, plus every file under given folders; symlinks are skipped."""
    report = AddReport.empty()
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_symlink():
            report.skipped_links.append(str(source))
        elif source.is_dir():
            for folder, dirnames, filenames in os.walk(source):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(filenames):
                    path = Path(folder) / filename
                    if filename.startswith("."):
                        continue
                    if path.is_symlink():
                        report.skipped_links.append(str(path))
                    else:
                        files.append(path)
        elif source.is_file():
            files.append(source)
        else:
            report.rejected.append(Rejected(str(source), "does not exist."))
    return files, report


def _rel(project: Project, path: Path) -> str:
    return Path(path).relative_to(project.root).as_posix()
