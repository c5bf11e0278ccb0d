"""Off-topic photos (kind "outlier", kept for the readers of that id): photos unlike every
category of the project, by a margin calibrated on the project itself.

A photo's score is its cosine distance to the nearest category centre (the mean of the
category's unit-norm training features; its own category's centre without the photo itself):
centres average away backgrounds, and a few similar off-topic photos (three pagodas among
t-shirts) do not hide each other as nearest neighbours would. Measured: nearest-neighbour
distances (those of `abstention.neighbour_distances`) put six Caltech photos added to the demo
below the demo's own tail; the centre distance puts five of them on top.

The project's own photos calibrate the cut, as the "not sure" rule does
(abstention.conformal_quantile), but for a number of false alarms rather than a share: the
"not sure" cut raises 5% of any project by construction. The scores' upper tail is modelled as
normal, its spread measured between the median and the TAIL_QUANTILE, and the threshold put
where a clean project of n photos would exceed it FALSE_ALARMS times in expectation (the
normal tail is heavier than the measured ones: Caltech 0 of 5,233 photos raised, the demo 0 of
100; the old z-score cut raised 44 honest Caltech photos, 1 of them right). The price,
measured: in a project of 100 clothing photos the honest tail reaches 0.55 and six Caltech
photos added to the demo lie at 0.53-0.66, so only the clearest are raised (2 of the 6).

"Unusual but in its category" (a patterned skirt among plain ones, a drawing of an anchor) is
not a problem to fix and is not reported: issue 16 found 0 of 29 such photos wrong.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TYPE_CHECKING

from duetml.abstention import conformal_quantile
from duetml.review.types import Finding, Suggestion, make_finding

if TYPE_CHECKING:
    from duetml.review.data import ReviewData

TAIL_QUANTILE = 0.9  # the tail's spread is measured from the median to here
FALSE_ALARMS = 1.0  # expected photos of a clean project above the (normal) threshold
MIN_PHOTOS = 20  # fewer training photos than this measure no distribution: nothing is raised


def off_topic_scores(data: ReviewData) -> dict[str, float]:
    """rel -> how far beyond the threshold (in tail spreads) each off-topic photo lies."""
    import numpy as np

    train = np.array([i for i, r in enumerate(data.records) if r.split == "train"])
    if len(train) < MIN_PHOTOS:
        return {}
    names = sorted({data.records[i].category for i in train})
    column = {c: j for j, c in enumerate(names)}
    labels = np.array([column.get(r.category, -1) for r in data.records])
    sums = np.zeros((len(names), data.x.shape[1]), dtype=np.float64)
    for j in range(len(names)):
        sums[j] = data.x[train[labels[train] == j]].sum(0, dtype=np.float64)
    counts = np.bincount(labels[train], minlength=len(names))
    norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    is_train = np.zeros(len(data.records), dtype=bool)
    is_train[train] = True
    score = np.empty(len(data.records))
    for start in range(0, len(data.records), 4096):
        rows = np.arange(start, min(start + 4096, len(data.records)))
        dots = data.x[rows].astype(np.float64) @ sums.T
        sims = dots / norms[None, :]
        own = labels[rows]
        leave_out = is_train[rows] & (own >= 0)
        if leave_out.any():
            at, cat = np.flatnonzero(leave_out), own[leave_out]
            rest = np.sqrt(np.maximum(norms[cat] ** 2 - 2 * dots[at, cat] + 1.0, 1e-12))
            sims[at, cat] = np.where(counts[cat] > 1, (dots[at, cat] - 1.0) / rest, -1.0)
        score[rows] = 1.0 - sims.max(1)
    reference = score[train]
    median = conformal_quantile(reference, 0.5)
    upper = conformal_quantile(reference, TAIL_QUANTILE)
    normal = NormalDist()
    spread = max((upper - median) / normal.inv_cdf(TAIL_QUANTILE), 1e-6)
    n = len(data.records)
    threshold = median + spread * normal.inv_cdf(1.0 - min(FALSE_ALARMS / n, 0.5))
    beyond = (score - threshold) / spread
    return {data.records[i].rel: float(beyond[i]) for i in np.flatnonzero(score > threshold)}


def find_off_topic(data: ReviewData, scores: dict[str, float], skip: set[str]) -> list[Finding]:
    """One finding per off-topic photo (its own id, its own suggestion); photos the model
    confidently places in another category are reported as mislabelled instead (`skip`)."""
    findings = []
    for rel, beyond in sorted(scores.items(), key=lambda item: -item[1]):
        category = rel.split("/")[1]
        if rel in skip or data.photo_dismissed("outlier", rel, ("off_topic", category)):
            continue
        findings.append(
            make_finding(
                "outlier",
                (rel,),
                (category,),
                0.6 + min(beyond / 10.0, 0.2),
                f"This photo in {category!r} is unlike every category of the project: "
                "it may not belong to this task at all.",
                Suggestion("remove", (rel,), label="Remove this photo"),
                {"subtype": "off_topic", "beyond": round(beyond, 2)},
            )
        )
    return findings
