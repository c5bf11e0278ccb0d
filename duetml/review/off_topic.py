"""Outliers: photos unlike the rest of their category, or unlike every category
(off-domain), from nearest-neighbour distances."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from duetml.review.data import MAX_GROUP
from duetml.review.types import Finding, Suggestion, make_finding, photos_text

if TYPE_CHECKING:
    import numpy as np

    from duetml.review.data import ReviewData

OUTLIER_NEIGHBOURS = 5
OFF_DOMAIN_Z = 1.5  # robust z-score of the distance to the nearest category centre,
OFF_DOMAIN_Z_CATEGORY = 2.0  # ... and to its own category's centre,
OFF_DOMAIN_MAX_SHARE = 0.01  # at most 1% of the photos (at least OFF_DOMAIN_MIN_CAP) raised
OFF_DOMAIN_MIN_CAP = 10
OUTLIER_Z = 4.0  # robust z-score of the distance to the nearest photos of its own category


def _robust_z(values: np.ndarray) -> np.ndarray:
    import numpy as np

    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    spread = max(mad, 1e-3)
    return cast("np.ndarray", (values - median) / spread)


def off_domain_scores(data: ReviewData) -> dict[str, float]:
    """rel -> score of training photos unlike every category: a low cosine similarity to the
    nearest category centre (its own centre without the photo itself), both for the whole
    project and for its own category. Centres are barely moved by a few strange photos, so
    a handful of similar off-domain photos (five churches among t-shirts) do not hide each
    other the way nearest neighbours would. Measured (bench/bench_review.py): in a narrow
    project (clothing) Caltech photos stand out on both scores; in a broad one (Caltech)
    a few percent of honest photos do too, hence the cap on how many are raised."""
    import numpy as np

    train_rows = np.array([i for i, r in enumerate(data.records) if r.split == "train"])
    if len(train_rows) < 10:
        return {}
    names = sorted({data.records[i].category for i in train_rows})
    column = {c: j for j, c in enumerate(names)}
    labels = np.array([column[data.records[i].category] for i in train_rows])
    sums = np.zeros((len(names), data.x.shape[1]), dtype=np.float64)
    for j in range(len(names)):
        sums[j] = data.x[train_rows[labels == j]].sum(0, dtype=np.float64)
    counts = np.bincount(labels, minlength=len(names))
    sum_norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    best = np.empty(len(train_rows))
    own_sim = np.empty(len(train_rows))
    for start in range(0, len(train_rows), 4096):
        rows = slice(start, start + 4096)
        dots = data.x[train_rows[rows]] @ sums.T.astype(np.float32)
        sims = dots / sum_norms[None, :]
        own = labels[rows]
        own_dot = dots[np.arange(len(own)), own]
        leave_one_out = np.sqrt(np.maximum(sum_norms[own] ** 2 - 2 * own_dot + 1.0, 1e-12))
        own_sim[rows] = np.where(counts[own] > 1, (own_dot - 1.0) / leave_one_out, -1.0)
        sims[np.arange(len(own)), own] = own_sim[rows]
        best[rows] = sims.max(1)
    z_project = _robust_z(-best)
    z_category = np.zeros(len(train_rows))
    for j in range(len(names)):
        members = labels == j
        if members.sum() >= 5:
            z_category[members] = _robust_z(-own_sim[members])
    candidates = np.flatnonzero((z_project >= OFF_DOMAIN_Z) & (z_category >= OFF_DOMAIN_Z_CATEGORY))
    cap = max(OFF_DOMAIN_MIN_CAP, int(OFF_DOMAIN_MAX_SHARE * len(train_rows)))
    ranked = sorted(candidates, key=lambda i: -(z_project[i] + z_category[i]))[:cap]
    return {data.records[train_rows[i]].rel: float(z_project[i]) for i in ranked}


def find_outliers(
    data: ReviewData, off_domain_z: dict[str, float], skip: set[str]
) -> list[Finding]:
    """Off-domain photos (already scored), and photos far from their nearest neighbours in
    their own category (unusual for it). Mislabelled photos are reported as such instead."""
    import numpy as np

    train_rows = [i for i, r in enumerate(data.records) if r.split == "train"]
    off_domain: dict[str, list[tuple[str, float]]] = {}
    unusual: dict[str, list[tuple[str, float]]] = {}
    for rel, z in off_domain_z.items():
        if rel not in skip:
            off_domain.setdefault(rel.split("/")[1], []).append((rel, z))
    flagged = set(off_domain_z)
    by_category: dict[str, list[int]] = {}
    for i in train_rows:
        by_category.setdefault(data.records[i].category, []).append(i)
    for category, rows in by_category.items():
        if len(rows) < 8:
            continue
        rows = rows[:MAX_GROUP]
        xc = data.x[rows]
        gram = xc @ xc.T
        np.fill_diagonal(gram, -np.inf)
        kk = min(OUTLIER_NEIGHBOURS, len(rows) - 1)
        top = -np.partition(-gram, kk - 1, axis=1)[:, :kk]
        z_in = _robust_z(1.0 - top.mean(1))
        for row, z in zip(rows, z_in, strict=True):
            rel = data.records[row].rel
            if z >= OUTLIER_Z and rel not in skip and rel not in flagged:
                unusual.setdefault(category, []).append((rel, float(z)))
    findings = []
    for subtype, groups in (("off_domain", off_domain), ("unusual", unusual)):
        for category, items in groups.items():
            items = [
                (rel, z)
                for rel, z in items
                if not data.photo_dismissed("outlier", rel, (subtype, category))
            ]
            if not items:
                continue
            items.sort(key=lambda item: -item[1])
            n = len(items)
            if subtype == "off_domain":
                message = (
                    f"{photos_text(n).capitalize()} in {category!r} "
                    f"{'is' if n == 1 else 'are'} unlike every category of the project: "
                    "they may not belong to this task at all."
                )
                score = 0.6 + min(items[0][1] / 100.0, 0.2)
            else:
                message = (
                    f"{photos_text(n).capitalize()} in {category!r} "
                    f"{'is' if n == 1 else 'are'} unlike the rest of the category: "
                    "check that they show what the category means."
                )
                score = 0.45 + min(items[0][1] / 100.0, 0.1)
            photos = tuple(rel for rel, _ in items)
            findings.append(
                make_finding(
                    "outlier",
                    photos,
                    (category,),
                    score,
                    message,
                    Suggestion("remove", photos, label=f"Remove {photos_text(n)}"),
                    {"subtype": subtype, "z": round(items[0][1], 2)},
                )
            )
    return findings
