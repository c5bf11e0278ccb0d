"""What would hurt a model, found before training: the checks behind `duetml status`.

The same facts ground the agents ("`cat` has 3 photos and `dog` 120"), so they are plain data.
"""

from __future__ import annotations

import os
from typing import TypedDict

import msgspec

from duetml import images
from duetml.errors import BadImageError, DuetmlError
from duetml.names import validate_category_name
from duetml.project import SPLITS, ImageRecord, Project, fingerprint_of

# Fewer photos than this and the SVM barely learns the category. The one definition: the
# review imports it and the page gets it from GET /api/project.
TINY_CATEGORY = 5
IMBALANCE_RATIO = 5.0


class DataWarning(msgspec.Struct):
    """Something about the photos that would hurt a model; ``kind`` is stable, for programs."""

    kind: str
    message: str


class CategoryCount(TypedDict):
    name: str
    images: int
    test_images: int


class ModelSummary(TypedDict):
    trained_at: float | None  # seconds since the epoch
    cv_accuracy: float | None
    cv_added_since: int  # >0: cv_accuracy extends the last full run with photos added since
    categories: list[str]
    backbone: str
    older_than_data: bool  # trained before the training photos last changed


class ReviewSummary(TypedDict):
    findings: int
    counts: dict[str, int]  # findings of each kind
    summary: str


class HealthReport(msgspec.Struct):
    """What `duetml status` shows (not to be confused with `duetml llm status`, agents/status);
    as is, `duetml status --json` and GET /api/status (a msgspec Struct: see review/types)."""

    categories: list[CategoryCount]
    images: int
    test_images: int
    model: ModelSummary | None
    warnings: list[DataWarning] = msgspec.field(default_factory=list)
    review: ReviewSummary | None = None


def project_health(
    project: Project,
    check_files: bool = True,
    listing: tuple[list[ImageRecord], dict[str, str]] | None = None,
) -> HealthReport:
    """Counts and warnings; ``check_files`` decodes unchecked photos to find corrupt ones.

    ``listing``: every photo of the project and its content hash, when the caller keeps them
    current already (the web server does, per folder), so a big project is not re-read.
    """
    # One scan and one hash lookup serve every check below.
    if listing is None:
        records = project.images("train") + project.images("test")
        hashes = project.hashes(records)
    else:
        records, hashes = listing

    infos = project.categories(records)
    counts = {i.name: i.count for i in infos if i.count or not i.test_count}
    warnings = _count_warnings(counts)
    warnings += _duplicate_warnings(duplicate_groups(project, hashes))
    warnings += _odd_entries(project)
    if check_files:
        warnings += _unreadable(project, records, hashes)
    model_info, model_warnings = _model_summary(project, records, hashes)
    warnings += model_warnings
    review_info = _review_summary(project, hashes) if model_info is not None else None
    return HealthReport(
        review=review_info,
        categories=[
            {"name": i.name, "images": i.count, "test_images": i.test_count} for i in infos
        ],
        images=sum(i.count for i in infos),
        test_images=sum(i.test_count for i in infos),
        model=model_info,
        warnings=warnings,
    )


def _count_warnings(counts: dict[str, int]) -> list[DataWarning]:
    """Empty and tiny categories, an imbalance between them, and a lone category."""
    warnings: list[DataWarning] = []
    for name, count in counts.items():
        if count == 0:
            warnings.append(
                DataWarning("empty", f"Category {name!r} has no photos: add some or remove it.")
            )
        elif count < TINY_CATEGORY:
            warnings.append(
                DataWarning(
                    "tiny",
                    f"Category {name!r} has only {count} photo(s): add at least {TINY_CATEGORY} "
                    "for a model that generalises.",
                )
            )
    nonzero = {n: c for n, c in counts.items() if c}
    if len(nonzero) >= 2:
        big, small = max(nonzero, key=nonzero.__getitem__), min(nonzero, key=nonzero.__getitem__)
        if nonzero[big] >= IMBALANCE_RATIO * nonzero[small]:
            warnings.append(
                DataWarning(
                    "imbalance",
                    f"Categories are imbalanced: {big!r} has {nonzero[big]} photos but {small!r} "
                    f"only {nonzero[small]}; add photos to the small ones.",
                )
            )
    if len([n for n in counts]) == 1:
        warnings.append(
            DataWarning("one_category", "There is only one category: a model needs at least two.")
        )
    return warnings


def _model_summary(
    project: Project, records: list[ImageRecord], hashes: dict[str, str]
) -> tuple[ModelSummary | None, list[DataWarning]]:
    """The saved model's metadata (None without one), and a warning for a damaged model or
    one older than the data."""
    from duetml.prediction import load_model  # keeps `status` free of numpy work

    warnings: list[DataWarning] = []
    model_info: ModelSummary | None = None
    try:
        model = load_model(project, extras=())  # the metadata is all the status shows
    except DuetmlError as exc:
        if os.path.exists(project.state_dir / "model" / "model.npz"):
            warnings.append(DataWarning("model", str(exc)))
    else:
        train = [r for r in records if r.split == "train"]
        stale = model.meta.get("fingerprint") != fingerprint_of(train, hashes)
        model_info = {
            "trained_at": model.meta.get("trained_at"),
            "cv_accuracy": model.meta.get("cv_accuracy"),
            # >0: the accuracy extends the last full cross-validation with photos added since
            "cv_added_since": model.meta.get("cv_added_since") or 0,
            "categories": model.categories,
            "backbone": model.backbone,
            "older_than_data": stale,
        }
        if stale:
            warnings.append(
                DataWarning(
                    "stale_model", "The model is older than the data: run `duetml train` again."
                )
            )
    return model_info, warnings


def duplicate_groups(project: Project, hashes: dict[str, str] | None = None) -> list[list[str]]:
    """Groups of photos with identical content that sit in different categories.

    ``hashes`` (rel -> content hash of every photo) saves a second scan when the caller has it.
    """
    if hashes is None:
        hashes = project.hashes(project.images("train") + project.images("test"))
    by_hash: dict[str, list[str]] = {}
    for rel, digest in hashes.items():
        by_hash.setdefault(digest, []).append(rel)
    return [sorted(rels) for rels in by_hash.values() if len({r.split("/")[1] for r in rels}) > 1]


def _duplicate_warnings(groups: list[list[str]]) -> list[DataWarning]:
    return [
        DataWarning(
            "duplicate",
            f"The same photo is in {len(g)} categories ({', '.join(g)}): keep it in one.",
        )
        for g in groups[:20]
    ]


def _odd_entries(project: Project) -> list[DataWarning]:
    """Things in the data folders that duetml ignores, so the user is not surprised."""
    found: list[DataWarning] = []
    for split in SPLITS:
        folder = project.split_dir(split)
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.is_symlink():
                found.append(
                    DataWarning(
                        "symlink", f"{split}/{entry.name} is a symbolic link and is ignored."
                    )
                )
            elif entry.is_dir():
                try:
                    validate_category_name(entry.name)
                except DuetmlError as exc:
                    found.append(
                        DataWarning("bad_name", f"Folder {split}/{entry.name!r} is ignored: {exc}")
                    )
                    continue
                for inner in os.scandir(entry.path):
                    where = f"{split}/{entry.name}/{inner.name}"
                    if inner.is_symlink():
                        found.append(
                            DataWarning(
                                "symlink",
                                f"{where} is a symbolic link and is ignored.",
                            )
                        )
                    elif (
                        inner.is_file()
                        and os.path.splitext(inner.name)[1].lower() not in images.IMAGE_EXTENSIONS
                        and not inner.name.startswith(".")
                    ):
                        found.append(
                            DataWarning(
                                "not_image",
                                f"{where} is not an image file and is ignored.",
                            )
                        )
            elif not entry.name.startswith("."):
                found.append(
                    DataWarning(
                        "stray_file",
                        f"{split}/{entry.name} is outside any category folder and is ignored.",
                    )
                )
    return found[:50]


def _unreadable(
    project: Project, records: list[ImageRecord], hashes: dict[str, str]
) -> list[DataWarning]:
    from duetml.training import feature_cache

    # A photo with cached features decoded fine before; only the others are decoded now.
    cache = feature_cache(project)
    found = []
    for record in records:
        if hashes[record.rel] in cache:
            continue
        try:
            images.check_image(record.path)
        except BadImageError as exc:
            found.append(DataWarning("unreadable", f"{record.rel} cannot be used: {exc}"))
    return found


def _review_summary(project: Project, hashes: dict[str, str]) -> ReviewSummary | None:
    """How many findings the data review has (from its cache when nothing changed)."""
    from duetml.review import review_project, summary

    try:
        review = review_project(project, extract=False, hashes=hashes)
    except DuetmlError:
        return None
    counts: dict[str, int] = {}
    for finding in review.findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    return {"findings": len(review.findings), "counts": counts, "summary": summary(review)}
