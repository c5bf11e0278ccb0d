"""Near-duplicates and leaks: copies of one picture (re-encoded, resized, mirrored or cropped
around its centre), within a category, across categories, and between training and test (a
leak).

Exact copies (the same file content) first. Other candidates are pairs of nearest neighbours
in feature space (DUPLICATE_CANDIDATE), and every candidate pair is then verified on the
pixels (pixels.py): the perceptual hashes of the two pictures must match both as a whole and
in their centre, at some pair of nested crops and possibly mirrored. CNN features and whole
thumbnails alone were fooled by a shared background (issue 16: distinct garments on one rug
were "copies"); the central crop is dominated by the object. A group is a clique of verified
pairs, never a chain: three photos are one group only when each pair of them is verified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from duetml.review.mislabels import own_probabilities
from duetml.review.pixels import CROP_SCALES, FINE_CROPS, FINE_WORDS, hamming
from duetml.review.types import Finding, Suggestion, make_finding, photos_text

if TYPE_CHECKING:
    import numpy as np

    from duetml.classifier import TrainedModel
    from duetml.project import ImageRecord
    from duetml.review.data import ReviewData

# Feature similarity of nearest neighbours above which the pictures are compared: a copy
# cropped to 80% of its original still reaches it (measured on Caltech).
DUPLICATE_CANDIDATE = 0.75
WHOLE_BITS = 8  # of 64 pHash bits that may differ between the two pictures as a whole
CENTRE_BITS = 8  # ... and between their central crops
FINE_BITS = 42  # of the 256 bits of the fine hash of the pictures as a whole
CENTRE_STEP = 4  # how many nested crops further in the centre is (0.9^4: 66% of the side)
MAX_OFFSET = 3  # one picture may be a central crop of the other down to 0.9^3 (73%)


def find_duplicates(data: ReviewData, model: TrainedModel | None) -> list[Finding]:
    """Copies: exact ones, then feature neighbours verified on the pixels; cliques only."""
    import numpy as np

    agreement = own_probabilities(model) if model is not None else {}
    n = len(data.records)
    keys = [data.hashes.get(r.rel, "") for r in data.records]
    verified: dict[tuple[int, int], str] = {}  # (i, j), i < j -> "exact" or "pixels"
    by_content: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key:  # a photo without a content hash has no exact copy to find
            by_content.setdefault(key, []).append(i)
    for members in by_content.values():
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                verified[(members[a], members[b])] = "exact"
    if data.pixels is not None and n >= 2:
        rows = np.array([data.pixels.row.get(key, -1) for key in keys])
        similarities, indices = data.neighbours()
        for i, j in zip(*np.nonzero(similarities >= DUPLICATE_CANDIDATE), strict=True):
            a, b = sorted((int(i), int(indices[i, j])))
            if (a, b) in verified or rows[a] < 0 or rows[b] < 0:
                continue
            if same_picture(data.pixels.hashes[rows[a]], data.pixels.hashes[rows[b]]):
                verified[(a, b)] = "pixels"
    findings = []
    for members in _cliques(verified):
        recs = [data.records[i] for i in members]
        how = (
            "exact"
            if all(verified.get((a, b)) == "exact" for a in members for b in members if a < b)
            else "pixels"
        )
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
                    {"match": how},
                )
            )
        # Copies inside one split (train with train, test with test) are a separate matter.
        for split_records in (trains, tests):
            if len(split_records) >= 2:
                findings.append(_duplicate_finding(split_records, how, agreement))
    return findings


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two photos' hash rows (pixels.py) show one picture: for the second as it is or
    mirrored, some central crop of one matches the other as a whole (WHOLE_BITS of the
    coarse hash and FINE_BITS of the fine one) and CENTRE_STEP crops further in as well
    (CENTRE_BITS), one of the two being the whole image."""
    import numpy as np

    s = len(CROP_SCALES)
    steps = [
        (i, j)
        for i in range(MAX_OFFSET + 1)
        for j in range(MAX_OFFSET + 1)
        if min(i, j) == 0 and max(i, j) + CENTRE_STEP < s and max(i, j) < FINE_CROPS
    ]
    first = np.array([i for i, _ in steps])
    second = np.array([j for _, j in steps])
    fine_a = a[2 * s :].reshape(2 * FINE_CROPS, FINE_WORDS)
    fine_b = b[2 * s :].reshape(2 * FINE_CROPS, FINE_WORDS)
    for mirror in (0, 1):
        whole = hamming(a[first], b[mirror * s + second])
        centre = hamming(a[first + CENTRE_STEP], b[mirror * s + second + CENTRE_STEP])
        fine = hamming(fine_a[first], fine_b[mirror * FINE_CROPS + second]).sum(1)
        if bool(np.any((whole <= WHOLE_BITS) & (centre <= CENTRE_BITS) & (fine <= FINE_BITS))):
            return True
    return False


def _cliques(pairs: dict[tuple[int, int], str]) -> list[list[int]]:
    """Groups in which every pair is verified: greedily, from the photo with the most
    verified partners, each photo in at most one group (a chain a-b-c without a-c makes
    the group a-b, then c alone, which is no group)."""
    partners: dict[int, set[int]] = {}
    for a, b in pairs:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    left = set(partners)
    groups = []
    for seed in sorted(partners, key=lambda i: (-len(partners[i]), i)):
        if seed not in left:
            continue
        group = [seed]
        for other in sorted(partners[seed] & left, key=lambda i: (-len(partners[i]), i)):
            if all(other in partners[member] for member in group):
                group.append(other)
        left -= set(group)
        if len(group) >= 2:
            groups.append(sorted(group))
    return groups


def _duplicate_finding(recs: list[ImageRecord], how: str, agreement: dict[str, float]) -> Finding:
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
            "match": how,
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
