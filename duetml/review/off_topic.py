"""Off-topic photos (kind "outlier", kept for the readers of that id): photos unlike every
category of the project, by a margin calibrated on the project itself.

A photo's score is its mean distance to its nearest photos of the project (the NEIGHBOURS
the review already searched; for unit vectors |a - b| = sqrt(2 - 2 a.b), the distance of
`abstention.neighbour_distances`, the "not sure: unlike every category" rule of predictions).
A project's own photos give the calibration: the "not sure" rule cuts at a conformal quantile
of these distances (abstention.conformal_quantile), which by construction raises a fixed share
of any project, 5% there. Here the cut is set for a number of false alarms instead: the tail
of the distances is modelled as exponential, its scale measured between the median and the
TAIL_QUANTILE (robust to up to 1 - TAIL_QUANTILE of the photos being off-topic themselves),
and the threshold put where a clean project of n photos would exceed it FALSE_ALARMS times
in expectation. So a clean project gets about none, at any size, and five churches among 100
t-shirts still stand out.

"Unusual but in its category" (a patterned skirt among plain ones, a drawing of an anchor) is
not a problem to fix and is not reported: issue 16 found 0 of 29 such photos wrong.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from duetml.abstention import conformal_quantile
from duetml.review.types import Finding, Suggestion, make_finding

if TYPE_CHECKING:
    from duetml.review.data import ReviewData

TAIL_QUANTILE = 0.9  # the exponential tail's scale is measured from the median to here
FALSE_ALARMS = 0.5  # expected photos of a clean project above the threshold
MIN_PHOTOS = 20  # fewer photos than this measure no distribution: nothing is raised


def off_topic_scores(data: ReviewData) -> dict[str, float]:
    """rel -> how far beyond the threshold (in tail scales) each off-topic photo lies."""
    import numpy as np

    n = len(data.records)
    if n < MIN_PHOTOS:
        return {}
    similarities, _ = data.neighbours()
    valid = similarities > -1.0
    distances = np.sqrt(np.maximum(2.0 - 2.0 * np.where(valid, similarities, 1.0), 0.0))
    counts = np.maximum(valid.sum(1), 1)
    score = distances.sum(1) / counts
    median = conformal_quantile(score, 0.5)
    upper = conformal_quantile(score, TAIL_QUANTILE)
    scale = max((upper - median) / math.log(1.0 / (1.0 - TAIL_QUANTILE) / 2.0), 1e-6)
    threshold = upper + scale * math.log(max((1.0 - TAIL_QUANTILE) * n / FALSE_ALARMS, 1.0))
    beyond = (score - threshold) / scale
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
                0.6 + min(beyond / 50.0, 0.2),
                f"This photo in {category!r} is unlike every category of the project: "
                "it may not belong to this task at all.",
                Suggestion("remove", (rel,), label="Remove this photo"),
                {"subtype": "off_topic", "beyond": round(beyond, 2)},
            )
        )
    return findings
