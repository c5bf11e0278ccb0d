"""When the model should answer "not sure": the rule, fitted on the project's own photos.

Two reasons, both measured at training time rather than fixed constants:

- unlike every category: the photo's mean distance to its NEIGHBOURS nearest training photos
  (in the backbone's L2-normalised feature space) is larger than QUANTILE of the training
  photos' own leave-one-out distances, i.e. farther from the training data than all but 5%
  of the photos the project does have. A hat in a project of shoes and shirts lands there;
  calibrated probabilities alone cannot tell, since they always sum to one over the known
  categories (on the demo, Caltech photos got 87-92% "confidence", held-out clothing 90-95%).
- too close to call: the top probability is at or below the floor under which the model's
  out-of-fold (cross-validated) answers were wrong more often than right.

The training photos' normalised features are kept beside the model as float32 (27 MB at
5,233 photos, at most MAX_REFERENCE rows), so prediction and the exported ONNX graph compute
the very same distances (one float32 matrix product and a top-k). Why not scikit-learn's
NearestNeighbors: for unit vectors the brute-force search is one float32 product, which the
export repeats operator for operator; NearestNeighbors' euclidean path upcasts float32 chunks
to float64 (slower here) and its tree indexes do not help in 1,280 dimensions.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

NEIGHBOURS = 5
QUANTILE = 0.95
# The threshold is the quantile of this many photos' leave-one-out distances (all of them in
# smaller projects): 25 of them lie above a 95% quantile, and the cost stays one 500 x n
# product (5,233 photos: a tenth of a second on an idle laptop core).
CALIBRATION_SAMPLE = 500
# Training photos kept as the reference: beyond this many, an even random subset (the memory
# and the per-prediction product stay bounded at 26,000 photos).
MAX_REFERENCE = 8000
# The probability floor needs at least this many out-of-fold photos below it.
MIN_BELOW = 3
REFERENCE_EXTRA = "reference_features"  # the name of the array stored with the model

UNLIKE = "unlike_every_category"
TOO_CLOSE = "too_close_to_call"
REASON_TEXT = {
    UNLIKE: "unlike the training photos of every category",
    TOO_CLOSE: "too close to call between categories",
}


class AbstentionRule(msgspec.Struct, frozen=True):
    """The "not sure" rule, stored in a model's metadata (a msgspec Struct: see review/types)."""

    neighbours: int
    distance_threshold: float  # mean distance to the nearest training photos, above: unlike
    probability_floor: float  # top probability at or below: too close to call
    quantile: float
    reference_photos: int

    def as_dict(self) -> dict[str, Any]:
        """As the model's metadata and the export's labels.json hold it."""
        return msgspec.structs.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> AbstentionRule | None:
        """The rule stored in a model's metadata; None for models trained without one."""
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError:
            return None


def neighbour_distances(
    queries: np.ndarray,
    reference: np.ndarray,
    neighbours: int,
    leave_out: np.ndarray | None = None,
    rows_per_block: int = 512,
) -> np.ndarray:
    """Mean Euclidean distance of each (normalised) query to its `neighbours` nearest
    reference rows; `leave_out[i]` is a reference row query i must not count (itself).

    For unit vectors |a - b| = sqrt(2 - 2 a.b): one float32 product, then a partial sort."""
    ref = np.asarray(reference, dtype=np.float32)
    k = min(neighbours, ref.shape[0] - (leave_out is not None))
    out = np.empty(len(queries))
    if k < 1:
        out.fill(0.0)
        return out
    for lo in range(0, len(queries), rows_per_block):
        block = np.asarray(queries[lo : lo + rows_per_block], dtype=np.float32)
        similarity = block @ ref.T
        if leave_out is not None:
            similarity[np.arange(len(block)), leave_out[lo : lo + rows_per_block]] = -np.inf
        top = -np.partition(-similarity, k - 1, axis=1)[:, :k]
        out[lo : lo + rows_per_block] = np.sqrt(np.maximum(2.0 - 2.0 * top, 0.0)).mean(axis=1)
    return out


def probability_floor(probabilities: np.ndarray, y: np.ndarray) -> float:
    """The highest out-of-fold top probability at and below which the model's answers were
    right less than half of the time (at least MIN_BELOW photos); 0 when there is none."""
    confidence = probabilities.max(axis=1)
    order = np.argsort(confidence, kind="stable")
    correct = (probabilities.argmax(axis=1) == y)[order]
    seen = np.arange(1, len(order) + 1)
    accuracy_below = np.cumsum(correct) / seen
    wrong_mostly = np.nonzero((accuracy_below < 0.5) & (seen >= MIN_BELOW))[0]
    if not len(wrong_mostly):
        return 0.0
    return float(confidence[order][wrong_mostly[-1]])


def conformal_quantile(scores: np.ndarray, quantile: float) -> float:
    """The ceil((m + 1) q)-th smallest of m held-out scores (the largest when that exceeds m):
    a new photo like these lies above it with probability at most 1 - q (split conformal
    prediction). With few photos the plain quantile flagged far more than 5% of a project's
    own new photos (8 per category: 5 of 20); this one is the maximum until m reaches 19."""
    m = len(scores)
    rank = min(m, int(np.ceil((m + 1) * quantile)))
    return float(np.sort(scores)[rank - 1])


def fit_rule(
    features: np.ndarray,
    y: np.ndarray,
    oof_probabilities: np.ndarray | None,
    seed: int = 0,
) -> tuple[AbstentionRule, np.ndarray] | None:
    """The rule and the reference features (float32) it measures distances against, from the
    training features (as extracted), their labels and the out-of-fold probabilities of the
    cross-validation (None when there was none: then only the distance rule applies).
    None when there are too few photos to measure anything."""
    n = len(features)
    if n < 3:
        return None
    rng = np.random.default_rng(seed)
    keep = np.arange(n) if n <= MAX_REFERENCE else np.sort(rng.choice(n, MAX_REFERENCE, False))
    # float32, not float16: widening 5,233 x 1,280 halves took 0.2 s per prediction, five
    # times the rest of predict_proba, and rounding to them a tenth of a second per training.
    reference = np.asarray(features[keep], dtype=np.float32)
    reference /= np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    m = len(reference)
    sample = np.arange(m) if m <= CALIBRATION_SAMPLE else rng.choice(m, CALIBRATION_SAMPLE, False)
    neighbours = min(NEIGHBOURS, m - 1)
    held_out = neighbour_distances(reference[sample], reference, neighbours, leave_out=sample)
    floor = probability_floor(oof_probabilities, y) if oof_probabilities is not None else 0.0
    rule = AbstentionRule(
        neighbours=neighbours,
        distance_threshold=conformal_quantile(held_out, QUANTILE),
        probability_floor=floor,
        quantile=QUANTILE,
        reference_photos=m,
    )
    return rule, reference


def reasons(
    rule: AbstentionRule | None,
    reference: np.ndarray | None,
    normalised_features: np.ndarray,
    probabilities: np.ndarray,
) -> list[str | None]:
    """Per photo: why the model is not sure (UNLIKE, TOO_CLOSE), or None when it is."""
    if rule is None or reference is None or not len(probabilities):
        return [None] * len(probabilities)
    distances = neighbour_distances(normalised_features, reference, rule.neighbours)
    top = probabilities.max(axis=1)
    out: list[str | None] = []
    for distance, confidence in zip(distances, top, strict=True):
        if distance > rule.distance_threshold:
            out.append(UNLIKE)
        elif confidence <= rule.probability_floor:
            out.append(TOO_CLOSE)
        else:
            out.append(None)
    return out
