"""The kernel SVM: kernels from the Gram matrix, libsvm's one-vs-one scores in NumPy, and the
fits (libsvm through scikit-learn, imported only when fitting).

Prediction is these few NumPy functions: the model stores the support vectors, the dual
coefficients and the intercepts as plain arrays (see `model`), never a fitted estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.svm import SVC

RBF_GAMMA = 1.0  # sklearn's gamma="scale" for unit-norm features of this dimension is ~1


def kernel(
    kind: str, gram: np.ndarray, out: np.ndarray | None = None, rows_per_block: int = 256
) -> np.ndarray:
    """The kernel matrix from the Gram matrix, into `out` (default: a new float64 array).

    exp(-gamma * max(2 - 2g, 0)), computed in the Gram matrix's precision (float32 when
    training) a block of rows at a time, each block written once into `out`: at 5,000 photos
    four whole-matrix passes over a 200 MB float64 array took longer than the Gram product,
    and a block of 256 rows stays in the processor's cache between the steps."""
    if kind == "linear":
        return gram
    out = np.empty(gram.shape) if out is None else out
    for lo in range(0, len(gram), rows_per_block):
        block = gram[lo : lo + rows_per_block] * (2.0 * RBF_GAMMA)
        block -= 2.0 * RBF_GAMMA
        np.minimum(block, 0.0, out=block)
        np.exp(block, out=block)
        out[lo : lo + rows_per_block] = block
    return out


def class_pairs(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) class of every one-vs-one pair, in libsvm's order (0,1), (0,2), ..."""
    first, second = np.triu_indices(n_classes, 1)
    return first, second


def votes_and_confidence(pair_scores: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class: one-vs-one votes won, and the summed signed decision values.

    One pass per class over its contiguous run of pairs (c, c+1), (c, c+2), ... instead of a
    Python step per pair (4,950 for 100 categories: 18 s -> a fraction of a second). Row-wise
    slices keep the n x pairs matrix in memory order; a sparse product was slower, because it
    transposes the whole matrix."""
    n = pair_scores.shape[0]
    votes = np.zeros((n, n_classes))
    confidence = np.zeros((n, n_classes))
    start = 0
    for c in range(n_classes - 1):
        stop = start + n_classes - 1 - c
        block = pair_scores[:, start:stop]  # pairs (c, j) for j = c+1 .. k-1, in order
        wins = block >= 0
        confidence[:, c] += block.sum(axis=1)
        votes[:, c] += wins.sum(axis=1)
        confidence[:, c + 1 :] -= block
        votes[:, c + 1 :] += ~wins
        start = stop
    return votes, confidence


def ovr_scores(pair_scores: np.ndarray, n_classes: int) -> np.ndarray:
    """libsvm one-vs-one scores -> one score per class (sklearn's `decision_function_shape="ovr"`):
    votes, plus the summed confidences squashed into (-1/3, 1/3) to break ties."""
    return ovr_from_votes(*votes_and_confidence(pair_scores, n_classes))


def ovr_from_votes(votes: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Votes, plus the summed confidences squashed into (-1/3, 1/3) to break ties: libsvm's
    one-vs-rest scores, the ranking every SVM prediction follows."""
    scores: np.ndarray = votes + confidence / (3 * (np.abs(confidence) + 1))
    return scores


def pair_margins(pair_scores: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's mean signed one-vs-one decision value: continuous, unlike votes."""
    _, confidence = votes_and_confidence(pair_scores, n_classes)
    return confidence / max(n_classes - 1, 1)


def class_scores(pair_scores: np.ndarray, n_classes: int, margin_weight: float) -> np.ndarray:
    """Votes decide the ranking (they are the more accurate rule); the margins make the
    probabilities follow how clear each decision was instead of being the same for every
    photo with the same votes."""
    return calibrated_from_votes(*votes_and_confidence(pair_scores, n_classes), margin_weight)


def calibrated_from_votes(
    votes: np.ndarray, confidence: np.ndarray, margin_weight: float
) -> np.ndarray:
    """`class_scores` from the votes and confidences (n, k)."""
    ovr = ovr_from_votes(votes, confidence)
    scores: np.ndarray = ovr + margin_weight * confidence / max(votes.shape[1] - 1, 1)
    return scores


def svm_pair_scores(
    k_sv: np.ndarray,
    dual_coef: np.ndarray,
    intercept: np.ndarray,
    n_support: np.ndarray,
    rows_per_block: int = 1024,
) -> np.ndarray:
    """libsvm's one-vs-one decision values (n, pairs) from the kernel against the support
    vectors (n, n_sv), positive when the pair's first class wins.

    For pair (i, j): K[:, SV_i] · coef[j-1, SV_i] + K[:, SV_j] · coef[i, SV_j] + b. Each
    class's block is multiplied once against all its coefficient rows (one BLAS call per
    class), then the pairs are gathered, in row blocks so memory stays bounded."""
    n_classes = len(n_support)
    n = k_sv.shape[0]
    if n_classes == 1:
        return np.zeros((n, 1))
    if n_classes == 2:
        binary: np.ndarray = (k_sv @ dual_coef[0] + intercept[0]).reshape(-1, 1)
        return binary
    starts = np.concatenate([[0], np.cumsum(n_support)]).astype(int)
    first, second = class_pairs(n_classes)
    # Flat column of (class c, other-class slot m) in the per-class products below.
    own = first * (n_classes - 1) + second - 1
    other = second * (n_classes - 1) + first
    out = np.empty((n, len(first)))
    for lo in range(0, n, rows_per_block):
        block = k_sv[lo : lo + rows_per_block]
        per_class = np.empty((len(block), n_classes, n_classes - 1))
        for c in range(n_classes):
            sv = slice(starts[c], starts[c + 1])
            per_class[:, c, :] = block[:, sv] @ dual_coef[:, sv].T
        flat = per_class.reshape(len(block), -1)
        scores = np.take(flat, own, axis=1)
        scores += np.take(flat, other, axis=1)
        scores += intercept
        out[lo : lo + rows_per_block] = scores
    return out


def fit_svc(k_train: np.ndarray, y: np.ndarray, C: float) -> SVC:
    from sklearn.svm import SVC

    svc = SVC(kernel="precomputed", C=C, decision_function_shape="ovo", class_weight="balanced")
    svc.fit(k_train, y)
    return svc


@dataclass
class FoldFit:
    pair_scores: np.ndarray  # out-of-fold decision values of the fold's test photos


def _block(k: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """k[rows][:, columns]: two `take`s are ~5x faster than `k[np.ix_(rows, columns)]` (measured
    on a 5,238 x 5,238 kernel), which matters five times per candidate."""
    block: np.ndarray = np.take(np.take(k, rows, axis=0), columns, axis=1)
    return block


def fit_fold(
    k: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, C: float
) -> FoldFit:
    n_classes = int(y.max()) + 1
    y_train = y[train_idx]
    svc = fit_svc(_block(k, train_idx, train_idx), y_train, C)
    support = train_idx[svc.support_]
    coef = libsvm_orientation(svc.dual_coef_, n_classes).reshape(svc.dual_coef_.shape)
    intercept = libsvm_orientation(svc.intercept_, n_classes).reshape(-1)
    scores = svm_pair_scores(_block(k, test_idx, support), coef, intercept, svc.n_support_)
    return FoldFit(scores)


def libsvm_orientation(values: np.ndarray, n_classes: int) -> np.ndarray:
    """Pair scores positive when the pair's first class wins, as libsvm computes them.

    sklearn flips the sign (of the decision values, `dual_coef_` and `intercept_`) in the
    binary case only, so that positive means `classes_[1]`; undo that here.
    """
    if n_classes == 2:
        return -np.asarray(values).reshape(-1, 1)
    return np.asarray(values)
