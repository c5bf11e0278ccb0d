"""Category-level findings: categories confused both ways (overlap), categories whose
photos fall into two separate groups (mixed), and small, imbalanced or empty categories."""

from __future__ import annotations

from typing import TYPE_CHECKING

from duetml import health
from duetml.review.types import Finding, Suggestion, make_finding, photos_text

if TYPE_CHECKING:
    import numpy as np

    from duetml.classifier import TrainedModel
    from duetml.project import ImageRecord, Project
    from duetml.review.data import ReviewData

MIXED_CONNECTIVITY = 0.03  # algebraic connectivity below which a category is two groups
MIXED_MIN_PHOTOS = 12
MIXED_MAX_PHOTOS = 300
MIXED_MIN_SHARE = 0.2  # the smaller group holds at least this share of the category
OVERLAP_MIN_SHARE = 0.1  # each of the pair sends at least this share to the other
OVERLAP_MIN_COUNT = 2
IMBALANCE_RATIO = 3.0  # a category with fewer than median / ratio photos is imbalanced


def find_overlaps(
    data: ReviewData, model: TrainedModel, explained: frozenset[str] = frozenset()
) -> list[Finding]:
    """Pairs of categories the out-of-fold predictions confuse in both directions: a question
    about how the two are defined, not a per-photo fix. Photos in ``explained`` (copies of one
    picture filed in both categories) are left out of the count: removing the copy is their
    fix, and three copies of shoes under `hat` do not make hats and shoes overlap."""
    import numpy as np

    probs = model.extras.get("oof_probabilities")
    rels = model.extras.get("oof_rels")
    if probs is None or rels is None:
        return []
    categories = model.categories
    k = len(categories)
    index = {c: i for i, c in enumerate(categories)}
    present = {r.rel for r in data.records}
    confusion = np.zeros((k, k), dtype=np.int64)
    for rel, p in zip(rels, probs, strict=True):
        rel = str(rel)
        if rel in present and rel not in explained:
            confusion[index[rel.split("/")[1]], int(np.argmax(p))] += 1
    sizes = confusion.sum(1)
    findings = []
    for a in range(k):
        for b in range(a + 1, k):
            ab, ba = int(confusion[a, b]), int(confusion[b, a])
            if min(ab, ba) < OVERLAP_MIN_COUNT or not sizes[a] or not sizes[b]:
                continue
            share_ab, share_ba = ab / sizes[a], ba / sizes[b]
            if min(share_ab, share_ba) < OVERLAP_MIN_SHARE:
                continue
            big, small = (a, b) if sizes[a] >= sizes[b] else (b, a)
            ca, cb = categories[a], categories[b]
            findings.append(
                make_finding(
                    "overlap",
                    (),
                    (ca, cb),
                    0.7 + 0.2 * min(share_ab, share_ba),
                    f"The model confuses {ca!r} and {cb!r} both ways ({ab} of {sizes[a]} "
                    f"and {ba} of {sizes[b]} photos): do the two overlap by definition? "
                    "Make each more distinct, or merge them if one category serves your goal.",
                    Suggestion(
                        "merge",
                        to=categories[big],
                        categories=(categories[small],),
                        label=f"Merge {categories[small]} into {categories[big]}",
                    ),
                    {"share_a_to_b": round(share_ab, 4), "share_b_to_a": round(share_ba, 4)},
                )
            )
    return findings


def find_mixed(data: ReviewData) -> list[Finding]:
    """Categories whose photos fall into two clearly separate groups: the graph of each
    photo's nearest neighbours in its category nearly falls apart in two (a small second
    eigenvalue of its normalised Laplacian; the split is the sweep cut of the Fiedler
    vector with the lowest conductance). Measured on Caltech: two classes filed as one give
    0.015-0.02, a single class 0.04-0.3; 2-means with a silhouette did not separate them."""
    import numpy as np

    by_category: dict[str, list[int]] = {}
    for i, r in enumerate(data.records):
        if r.split == "train":
            by_category.setdefault(r.category, []).append(i)
    findings = []
    for category, rows in by_category.items():
        if len(rows) < MIXED_MIN_PHOTOS:
            continue
        if len(rows) > MIXED_MAX_PHOTOS:  # an even sample keeps this O(sample^2)
            rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, MIXED_MAX_PHOTOS)]
        connectivity, side = _two_groups(data.x[rows].astype(np.float64))
        if connectivity >= MIXED_CONNECTIVITY:
            continue
        smaller = side if side.sum() <= (~side).sum() else ~side
        photos = tuple(data.records[rows[i]].rel for i in np.flatnonzero(smaller))
        rest = len(rows) - len(photos)
        findings.append(
            make_finding(
                "mixed",
                photos,
                (category,),
                0.5 + 0.3 * (1.0 - connectivity / MIXED_CONNECTIVITY),
                f"The photos of {category!r} fall into two separate groups ({rest} and "
                f"{len(photos)} photos): it may mix two different things.",
                Suggestion(
                    "split",
                    photos,
                    to=f"{category}-2",
                    categories=(category,),
                    label=f"Split {photos_text(len(photos))} into a new category",
                ),
                {"connectivity": round(float(connectivity), 4)},
            )
        )
    return findings


def _two_groups(x: np.ndarray, neighbours: int = 7) -> tuple[float, np.ndarray]:
    """(algebraic connectivity of the normalised k-NN graph, the better side of its cut)."""
    import numpy as np

    n = len(x)
    k = min(neighbours, n - 1)
    gram = x @ x.T
    np.fill_diagonal(gram, -np.inf)
    nearest = np.argpartition(-gram, k - 1, axis=1)[:, :k]
    adjacency = np.zeros((n, n))
    adjacency[np.repeat(np.arange(n), k), nearest.ravel()] = 1.0
    adjacency = np.maximum(adjacency, adjacency.T)
    degree = adjacency.sum(1)
    scale = 1.0 / np.sqrt(degree)
    laplacian = np.eye(n) - scale[:, None] * adjacency * scale[None, :]
    values, vectors = np.linalg.eigh(laplacian)
    order = np.argsort(vectors[:, 1] * scale)
    # Sweep cut: the prefix of the Fiedler order with the lowest conductance, each side
    # holding at least MIXED_MIN_SHARE of the photos.
    smallest = max(4, int(np.ceil(MIXED_MIN_SHARE * n)))
    inside = np.zeros(n, dtype=bool)
    between, volume, total = 0.0, 0.0, float(degree.sum())
    best = (np.inf, 0)
    for count, vertex in enumerate(order[:-1], start=1):
        between += degree[vertex] - 2.0 * adjacency[vertex, inside].sum()
        volume += degree[vertex]
        inside[vertex] = True
        if smallest <= count <= n - smallest:
            conductance = between / max(min(volume, total - volume), 1e-12)
            best = min(best, (conductance, count))
    side = np.zeros(n, dtype=bool)
    side[order[: best[1]]] = True
    if best[1] == 0:
        return 1.0, side
    return float(values[1]), side


def small_categories(project: Project, train: list[ImageRecord]) -> list[Finding]:
    """Empty, tiny and imbalanced categories (all of them, not only the extreme pair)."""
    import statistics

    counts = {name: 0 for name in project.category_names("train")}
    for record in train:
        counts[record.category] = counts.get(record.category, 0) + 1
    nonzero = [c for c in counts.values() if c]
    if not counts:
        return []
    median = statistics.median(nonzero) if nonzero else 0
    findings = []
    for name, count in counts.items():
        if count == 0:
            message = f"{name!r} has no photos, so the model ignores it: add photos or remove it."
            score, reason = 0.7, "empty"
        elif count < health.TINY_CATEGORY:
            message = (
                f"{name!r} has only {count} photo(s): the model can barely learn it; "
                f"add at least {health.TINY_CATEGORY}."
            )
            score, reason = 0.55, "tiny"
        elif len(nonzero) >= 2 and count * IMBALANCE_RATIO <= median:
            message = (
                f"{name!r} has {count} photos while a typical category has {median:g}: "
                "the model will rarely predict it; add photos to it."
            )
            score, reason = 0.3, "imbalanced"
        else:
            continue
        findings.append(
            make_finding(
                "small",
                (),
                (name,),
                score,
                message,
                Suggestion("add_photos", categories=(name,), label=f"Add photos to {name}"),
                {"count": float(count), "median": float(median), "reason": reason},
            )
        )
    return findings
