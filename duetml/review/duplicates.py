"""Near-duplicates and leaks: re-encoded, resized or slightly cropped copies (feature
similarity, checked on thumbnails), within a category, across categories, and between
training and test (a leak)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from duetml.review.mislabels import own_probabilities
from duetml.review.types import Finding, Suggestion, make_finding, photos_text

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from duetml.classifier import TrainedModel
    from duetml.project import ImageRecord
    from duetml.review.data import ReviewData

DUPLICATE_SIMILARITY = 0.92  # cosine similarity of features above which photos are copies
DUPLICATE_CANDIDATE = 0.84  # ... above which the pictures themselves are compared
THUMBNAIL_MATCH = 0.9  # correlation of 16x16 grey thumbnails of a copy (resized, re-encoded)


def find_duplicates(data: ReviewData, model: TrainedModel | None) -> list[Finding]:
    """Near-identical features: re-encoded, resized or slightly cropped copies."""
    import numpy as np

    agreement = own_probabilities(model) if model is not None else {}

    similarities, indices = data.neighbours()
    n = len(data.records)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    best_pair: dict[int, float] = {}
    thumbnails: dict[int, np.ndarray | None] = {}
    for i, j in zip(*np.nonzero(similarities >= DUPLICATE_CANDIDATE), strict=True):
        other = int(indices[i, j])
        similarity = float(similarities[i, j])
        if similarity < DUPLICATE_SIMILARITY and not _same_picture(data, i, other, thumbnails):
            continue
        a, b = root(int(i)), root(other)
        if a != b:
            parent[a] = b
        for member in (int(i), other):
            best_pair[member] = max(best_pair.get(member, 0.0), similarity)
    groups: dict[int, list[int]] = {}
    for i in best_pair:
        groups.setdefault(root(i), []).append(i)
    findings = []
    for members in groups.values():
        if len(members) < 2:
            continue
        recs = [data.records[i] for i in members]
        similarity = min(best_pair[i] for i in members)
        tests = [r for r in recs if r.split == "test"]
        trains = [r for r in recs if r.split == "train"]
        if tests and trains:
            cats = sorted({r.category for r in recs}, key=str.lower)
            photos = [r.rel for r in tests] + [r.rel for r in trains]
            findings.append(
                make_finding(
                    "leak",
                    photos,
                    cats,
                    0.95,
                    f"{photos_text(len(tests)).capitalize()} in the test set "
                    f"{'is a copy' if len(tests) == 1 else 'are copies'} of training "
                    "photos: this makes the test accuracy look better than it is.",
                    Suggestion(
                        "remove",
                        tuple(r.rel for r in tests),
                        label=f"Remove {photos_text(len(tests))} from the test set",
                    ),
                    {"similarity": round(similarity, 4)},
                )
            )
        # Copies inside one split (train with train, test with test) are a separate matter.
        for split_records in (trains, tests):
            if len(split_records) >= 2:
                findings.append(_duplicate_finding(split_records, similarity, agreement))
    return findings


def _same_picture(
    data: ReviewData, i: int, j: int, thumbnails: dict[int, np.ndarray | None]
) -> bool:
    """Whether two photos with close features are the same picture: their small grey
    thumbnails match (also mirrored). Resizing and re-encoding move the features of a copy
    more than a 5% crop does (measured: down to 0.86), while distinct photos of one object
    reach 0.9 too; the pixels tell them apart. Only these few candidates are decoded."""

    for k in (i, j):
        if k not in thumbnails:
            thumbnails[k] = _thumbnail(data.records[k].path)
    a, b = thumbnails[i], thumbnails[j]
    if a is None or b is None:
        return False
    mirrored = b.reshape(THUMBNAIL_SIZE, THUMBNAIL_SIZE)[:, ::-1].ravel()
    return max(float(a @ b), float(a @ mirrored)) >= THUMBNAIL_MATCH


THUMBNAIL_SIZE = 16


def _thumbnail(path: Path) -> np.ndarray | None:
    """A unit-norm, zero-mean 16x16 grey thumbnail (JPEG draft mode decodes at 1/8 size)."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("L", (THUMBNAIL_SIZE * 4, THUMBNAIL_SIZE * 4))
            small = image.convert("L").resize(
                (THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR
            )
    except (OSError, ValueError):
        return None
    vector = np.asarray(small, dtype=np.float64).ravel()
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else None


def _duplicate_finding(
    recs: list[ImageRecord], similarity: float, agreement: dict[str, float]
) -> Finding:
    cats = sorted({r.category for r in recs}, key=str.lower)
    keep = _copy_to_keep(recs, agreement)
    others = [r.rel for r in recs if r.rel != keep.rel]
    across = len(cats) > 1
    if across:
        message = (
            f"The same photo is filed in {len(cats)} categories "
            f"({', '.join(repr(c) for c in cats)}): a copy teaches the model "
            "two answers for one picture."
        )
    else:
        message = (
            f"{len(recs)} photos in {cats[0]!r} are copies of one picture: "
            "copies count twice and make cross-validation look better than it is."
        )
    return make_finding(
        "near_duplicate",
        [keep.rel, *others],
        cats,
        0.9 if across else 0.4,
        message,
        Suggestion(
            "remove",
            tuple(others),
            label=f"Remove {photos_text(len(others), 'copy', 'copies')}, "
            f"keep the one in {keep.category}",
        ),
        {
            "similarity": round(similarity, 4),
            "keep": keep.rel,
            "across_categories": "yes" if across else "no",
        },
    )


def _copy_to_keep(records: list[ImageRecord], agreement: dict[str, float]) -> ImageRecord:
    """The copy to keep: the one whose category the model agrees with most (across
    categories), then the one with the most pixels (the least resized or cropped), then the
    oldest file (the original, not the re-encoded copy)."""
    from PIL import Image

    def key(record: ImageRecord) -> tuple[float, int, float]:
        try:
            with Image.open(record.path) as image:  # reads the header only
                area = image.width * image.height
            age = -record.path.stat().st_mtime
        except OSError:
            area, age = 0, 0.0
        return (round(agreement.get(record.rel, 0.0), 1), area, age)

    return max(records, key=key)
