"""Off-topic photos (kind "outlier", kept for the readers of that id): photos unlike every
category of the project, by a margin calibrated on the project itself.

A photo's score is the mean of three measures of how unlike its nearest category it is, each
in robust units of the project's own spread (median and interquartile range):

- the cosine distance to the nearest category centre (the mean of the category's unit-norm
  training features, its own category's without the photo itself): centres average away
  backgrounds;
- the relative Mahalanobis distance (Ren et al. 2021) on the first PCA_DIM principal
  components: the distance to the nearest category mean under one shared, shrunk (Ledoit-Wolf)
  covariance, minus the distance to the whole project under its own; directions in which
  categories vary anyway count less;
- for EfficientNet-Lite0, the backbone's own ImageNet head (its final layer, shipped as
  duetml/models/efficientnet-lite0-imagenet-head.npz, applied to the features we cache): minus
  the log of the chance that an ImageNet class drawn for the photo matches one drawn for a
  photo of the category. An ibis among trousers is "spoonbill"; trousers are "jean".

Measured on bench/bench_review.py's planted photos (27 Caltech photos in three clothing
projects of about 100, three of them of one class in one category): above every honest photo
the centre distance ranks 22 of them, the relative Mahalanobis distance 21, the ImageNet
measure 17, their mean 24; under a threshold that keeps Caltech and the demo clean none of
them alone raised more than 17 (the old cut, centre distance alone with an untrimmed tail at
the 0.9 quantile: 4). The threshold was the larger problem.

The project's own photos calibrate the cut, as the "not sure" rule does
(abstention.conformal_quantile), but for a number of false alarms rather than a share. The
scores' upper tail is modelled as normal, its spread measured between the median and the
TAIL_QUANTILE, and the threshold put where a clean project of n photos would exceed it
FALSE_ALARMS times in expectation. Off-topic photos sit in that tail themselves (9 of 100
photos planted), so the tail is measured again TRIM_ROUNDS times without the photos above the
last threshold, and the categories measured again without the photos raised (REFIT_ROUNDS).
Measured: 22 of 27 planted photos raised, no honest one; the real Caltech subset (5,233
photos) and the demo (100) none (their highest scores 2.73 and 2.17, the thresholds 3.05
and 2.39). TAIL_QUANTILE and FALSE_ALARMS were chosen on these same sets (0.75 and 1 raised
21, 0.7 and 2 raised 22, each with no false alarm): a margin, not a guarantee. Missed: two
of three chairs filed together under shoes (photos of one class filed together can still
hide each other: three flamingos or three guitars added to the demo score 2.0-2.3 against a
threshold of 2.3, three ibises or chairs 3.4-6.6), and a dollar bill, a gramophone and an
inline skate among trousers.

"Unusual but in its category" (a patterned skirt among plain ones, a drawing of an anchor) is
not a problem to fix and is not reported: issue 16 found 0 of 29 such photos wrong.
"""

from __future__ import annotations

import functools
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING

from duetml.abstention import conformal_quantile
from duetml.review.types import Finding, Suggestion, make_finding

if TYPE_CHECKING:
    import numpy as np

    from duetml.review.data import ReviewData

TAIL_QUANTILE = 0.7  # the tail's spread is measured from the median to here
FALSE_ALARMS = 2.0  # expected photos of a clean project above the (normal) threshold
TRIM_ROUNDS = 3  # the tail measured again without the photos above the last threshold
REFIT_ROUNDS = 3  # the categories measured again without the photos raised (project_scores)
MIN_PHOTOS = 20  # fewer training photos than this measure no distribution: nothing is raised
PCA_DIM = 64  # principal components the Mahalanobis distances are measured on
TOP_CLASSES = 20  # ImageNet classes kept per photo (they hold nearly all of its probability)
CHUNK = 4096  # photos per block: memory stays bounded at any size
HEADS = {"efficientnet-lite0": "efficientnet-lite0-imagenet-head.npz"}
MODELS = Path(__file__).resolve().parent.parent / "models"


@functools.cache
def imagenet_head(backbone: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight (1000, dim) float32, bias (1000,)) of the backbone's ImageNet classifier, or
    None when none ships for it (the other two measures are then used alone)."""
    import numpy as np

    name = HEADS.get(backbone)
    if name is None:
        return None
    try:
        with np.load(MODELS / name, allow_pickle=False) as stored:
            return stored["weight"].astype(np.float32), stored["bias"].astype(np.float32)
    except (OSError, KeyError, ValueError):
        return None


def _labels(data: ReviewData) -> tuple[np.ndarray, np.ndarray, int]:
    """(training rows, category column of every photo (-1: none), number of categories)."""
    import numpy as np

    train = np.array([i for i, r in enumerate(data.records) if r.split == "train"])
    names = sorted({data.records[i].category for i in train})
    column = {c: j for j, c in enumerate(names)}
    labels = np.array([column.get(r.category, -1) for r in data.records])
    return train, labels, len(names)


def _own(labels: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Whether each photo is one the categories are measured on (its own category is then
    measured without it)."""
    import numpy as np

    own = np.zeros(len(labels), dtype=bool)
    own[fitted] = True
    own &= labels >= 0
    return own


def centre_distance(data: ReviewData, fitted: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Cosine distance of each photo to the nearest category centre (own one left out)."""
    import numpy as np

    sums = np.zeros((k, data.x.shape[1]), dtype=np.float64)
    for j in range(k):
        sums[j] = data.x[fitted[labels[fitted] == j]].sum(0, dtype=np.float64)
    counts = np.bincount(labels[fitted], minlength=k)
    norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    leave = _own(labels, fitted)
    score = np.empty(len(data.records))
    for start in range(0, len(data.records), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(data.records)))
        dots = data.x[rows].astype(np.float64) @ sums.T
        sims = dots / norms[None, :]
        out = leave[rows]
        if out.any():
            at, cat = np.flatnonzero(out), labels[rows][out]
            rest = np.sqrt(np.maximum(norms[cat] ** 2 - 2 * dots[at, cat] + 1.0, 1e-12))
            sims[at, cat] = np.where(counts[cat] > 1, (dots[at, cat] - 1.0) / rest, -1.0)
        score[rows] = 1.0 - sims.max(1)
    return score


def relative_mahalanobis(
    data: ReviewData, train: np.ndarray, fitted: np.ndarray, labels: np.ndarray, k: int
) -> np.ndarray:
    """min over categories of (Mahalanobis distance to the category mean under the shared
    within-category covariance) - (distance to the project mean under the project's), on a
    PCA of the features, both covariances shrunk (Ledoit-Wolf). A training photo's own
    category mean leaves it out: (m / (m - 1))^2 times its distance to the full mean."""
    import numpy as np
    from sklearn.covariance import LedoitWolf
    from sklearn.utils.extmath import randomized_svd

    # The projection and the whole project's covariance come from every training photo:
    # fitted on the categories' photos alone, they leave out the very directions in which
    # off-topic photos differ (measured: the planted photos fell below honest ones).
    sample = data.x[train[np.linspace(0, len(train) - 1, min(len(train), 4000)).astype(np.int64)]]
    mean = sample.mean(0)
    dim = min(PCA_DIM, len(sample) - 1, data.x.shape[1])
    _, _, directions = randomized_svd(sample - mean, dim, n_iter=3, random_state=0)
    basis = directions.T.astype(np.float32)
    y = np.empty((len(data.x), dim), dtype=np.float64)
    for start in range(0, len(data.x), CHUNK):
        block = slice(start, start + CHUNK)
        y[block] = (data.x[block] - mean.astype(np.float32)) @ basis
    counts = np.bincount(labels[fitted], minlength=k).astype(np.float64)
    means = np.zeros((k, dim))
    np.add.at(means, labels[fitted], y[fitted])
    means /= np.maximum(counts, 1)[:, None]
    within = LedoitWolf().fit(y[fitted] - means[labels[fitted]])
    whole = LedoitWolf().fit(y[train])
    chol = np.linalg.cholesky(within.precision_)
    yw, mw = y @ chol, means @ chol
    own = _own(labels, fitted)
    mw_square = (mw**2).sum(1)
    nearest = np.empty(len(y))
    for start in range(0, len(y), CHUNK):  # rows x categories at a time: bounded memory
        rows = np.arange(start, min(start + CHUNK, len(y)))
        part = yw[rows]
        distances = (part**2).sum(1)[:, None] - 2 * part @ mw.T + mw_square[None, :]
        out = np.flatnonzero(own[rows])
        cat = labels[rows][out]
        m = counts[cat]
        distances[out, cat] *= np.where(m > 1, (m / np.maximum(m - 1, 1)) ** 2, np.inf)
        nearest[rows] = distances.min(1)
    background: np.ndarray = whole.mahalanobis(y)
    relative: np.ndarray = nearest - background
    return relative


def imagenet_mismatch(
    data: ReviewData,
    fitted: np.ndarray,
    labels: np.ndarray,
    k: int,
    head: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """-log max over categories of P(photo's ImageNet class = a category photo's), from the
    TOP_CLASSES most probable ImageNet classes of each photo (own photo left out)."""
    import numpy as np

    weight, bias = head
    n = len(data.records)
    top = np.empty((n, TOP_CLASSES), dtype=np.int64)
    prob = np.empty((n, TOP_CLASSES), dtype=np.float64)
    for start in range(0, n, CHUNK):
        block = slice(start, start + CHUNK)
        raw = data.x[block] * data.norms[block, None] if data.norms is not None else data.x[block]
        logits = raw @ weight.T + bias
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        idx = np.argpartition(-p, TOP_CLASSES - 1, axis=1)[:, :TOP_CLASSES]
        top[block] = idx
        prob[block] = np.take_along_axis(p, idx, axis=1)
    profile = np.zeros((k, weight.shape[0]))
    for i in fitted:
        profile[labels[i], top[i]] += prob[i]
    counts = np.bincount(labels[fitted], minlength=k).astype(np.float64)
    leave = _own(labels, fitted)
    result = np.empty(n)
    for start in range(0, n, CHUNK // 8):  # k x rows x TOP_CLASSES values at a time
        rows = np.arange(start, min(start + CHUNK // 8, n))
        match = np.einsum("nt,cnt->nc", prob[rows], profile[:, top[rows]])
        left = np.broadcast_to(counts, match.shape).copy()
        out = np.flatnonzero(leave[rows])
        cat = labels[rows][out]
        match[out, cat] -= (prob[rows][out] ** 2).sum(1)
        left[out, cat] -= 1
        match = np.where(left > 0, match / np.maximum(left, 1), 0.0)
        result[rows] = -np.log(match.max(1) + 1e-9)
    return result


def _robust_units(score: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The score in units of the training photos' spread: (s - median) / (IQR / 1.349)."""
    import numpy as np

    q1, median, q3 = np.quantile(score[train], [0.25, 0.5, 0.75])
    units: np.ndarray = (score - median) / max((q3 - q1) / 1.349, 1e-9)
    return units


def project_scores(data: ReviewData) -> tuple[np.ndarray, float, float] | None:
    """(the combined score of every photo, the threshold, the tail spread), or None when the
    project has too few training photos or fewer than two categories to measure anything on.

    Three pagodas filed among t-shirts make part of the t-shirts' centre and ImageNet profile,
    and each hides the other two. So the photos raised are left out of what the categories
    are measured on (not of the calibration), and the scores measured again, up to
    REFIT_ROUNDS times: measured, three guitars filed under hat went from 2 raised to 3.
    A project with nothing raised is measured once."""
    import numpy as np

    train, labels, k = _labels(data)
    if len(train) < MIN_PHOTOS or k < 2:
        return None
    head = imagenet_head(data.backbone)
    if head is not None and head[0].shape[1] != data.x.shape[1]:
        head = None
    raised = np.zeros(len(data.records), dtype=bool)
    for _ in range(REFIT_ROUNDS + 1):
        fit = train[~raised[train]]
        if np.bincount(labels[fit], minlength=k).min() == 0:
            fit = train  # a category made only of raised photos: measure on all of them
        measures = [
            centre_distance(data, fit, labels, k),
            relative_mahalanobis(data, train, fit, labels, k),
        ]
        if head is not None:
            measures.append(imagenet_mismatch(data, fit, labels, k, head))
        combined: np.ndarray = np.mean([_robust_units(m, train) for m in measures], axis=0)
        cut, spread = threshold(combined[train], len(data.records))
        now = combined > cut
        if np.array_equal(now, raised):
            break
        raised = now
    return combined, cut, spread


def threshold(reference: np.ndarray, n: int) -> tuple[float, float]:
    """(threshold, tail spread): where a clean project of n photos would have FALSE_ALARMS
    above a normal tail fitted between the median and TAIL_QUANTILE of ``reference``, the
    tail measured again without what lies above, TRIM_ROUNDS times."""
    normal = NormalDist()
    kept = reference
    cut, spread = float("inf"), 1e-6
    for _ in range(TRIM_ROUNDS + 1):
        median = conformal_quantile(kept, 0.5)
        upper = conformal_quantile(kept, TAIL_QUANTILE)
        spread = max((upper - median) / normal.inv_cdf(TAIL_QUANTILE), 1e-6)
        cut = median + spread * normal.inv_cdf(1.0 - min(FALSE_ALARMS / n, 0.5))
        kept = reference[reference <= cut]
    return cut, spread


def off_topic_scores(data: ReviewData) -> dict[str, float]:
    """rel -> how far beyond the threshold (in tail spreads) each off-topic photo lies."""
    import numpy as np

    scored = project_scores(data)
    if scored is None:
        return {}
    score, cut, spread = scored
    beyond = (score - cut) / spread
    return {data.records[i].rel: float(beyond[i]) for i in np.flatnonzero(score > cut)}


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
