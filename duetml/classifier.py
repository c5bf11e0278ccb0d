"""The SVM on top of the frozen features: model selection, calibration, storage, prediction.

Why a precomputed kernel: features are L2-normalised, so both the linear and the RBF kernel
are functions of one Gram matrix G = X Xᵀ (for unit vectors |x - y|² = 2 - 2 x·y). It is
computed once and every candidate (kernel, C) in every cross-validation fold reuses it, which
keeps a re-train of a 1,000-photo project well under a second.

Why not `SVC(probability=True)` or `CalibratedClassifierCV`: the first is deprecated, and
both would force a pickle on disk. Probabilities here come from a two-parameter calibration
(temperature, and the weight of the continuous one-vs-one margins beside the votes) fitted on
the out-of-fold SVM scores of the same cross-validation that picks the hyper-parameters, so
they are calibrated on photos the SVM did not see. The model is then stored as plain arrays
(support vectors, dual coefficients, intercepts, temperature) in an .npz read with
`allow_pickle=False`, and prediction is a few lines of NumPy.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from duetml import atomic
from duetml.errors import ModelFileError, NotEnoughDataError

if TYPE_CHECKING:
    from sklearn.svm import SVC

MODEL_FORMAT = 2  # written as 1 for SVM models, which older duetml reads
RBF_GAMMA = 1.0  # sklearn's gamma="scale" for unit-norm features of this dimension is ~1
CANDIDATES: tuple[tuple[str, float], ...] = (
    ("linear", 0.1),
    ("linear", 1.0),
    ("linear", 10.0),
    ("rbf", 1.0),
    ("rbf", 10.0),
)
MAX_FOLDS = 5
# From this many photos on, all candidates are screened on one fold and only the best
# FINALISTS are cross-validated on all folds (each fold fit costs ~1 s at 5,000 photos).
HALVING_ABOVE = 2000
FINALISTS = 2


def normalise(features: np.ndarray, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
    """Unit-length rows. Training passes float32: the n x n Gram product, the kernel and the
    fold blocks then move half the bytes (the product itself is ~2x faster), and the model
    stores its support vectors as float32 anyway; prediction stays float64."""
    features = np.asarray(features, dtype=dtype)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    normalised: np.ndarray = features / np.maximum(norms, 1e-12)
    return normalised


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


@dataclass
class CrossValidation:
    """Out-of-fold results of the chosen candidate: what `eval` reports without a test set."""

    folds: int
    accuracy: float
    candidate_scores: dict[str, float]
    predicted: list[int]
    probabilities: np.ndarray  # (n, k), calibrated, out of fold
    reused_choice: bool = False  # only the previous (kernel, C) was cross-validated
    # After a small change the last cross-validation is extended instead of run again: its
    # rows stand, and each photo added since is predicted by the model trained before it
    # (which never saw it). `from_folds` marks the rows of the last full cross-validation,
    # `fresh_photos` is how many photos it had; all rows from folds means a fresh one.
    from_folds: np.ndarray | None = None  # bool (n,); None: every row is from a fold
    fresh_photos: int | None = None

    @property
    def fresh(self) -> bool:
        return self.from_folds is None or bool(self.from_folds.all())

    @property
    def added_since(self) -> int:
        """Rows predicted by an earlier model instead of a fold."""
        return 0 if self.from_folds is None else int((~self.from_folds).sum())


@dataclass
class TrainedModel:
    categories: list[str]
    backbone: str
    kernel: str
    C: float
    temperature: float
    margin_weight: float
    support_vectors: np.ndarray  # normalised features of the support vectors
    # The SVM's dual coefficients; for kernel "ridge" (the linear one-vs-rest model of large
    # projects, no support vectors), the (k, d) weights, with `intercept` its (k,) bias.
    dual_coef: np.ndarray
    intercept: np.ndarray
    n_support: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    # Named arrays stored beside the model, e.g. the out-of-fold probabilities the data review
    # reads; saved as plain arrays (prefix "extra_"), so loading stays pickle-free.
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    # ----- prediction ----------------------------------------------------------------
    def decision(self, features: np.ndarray) -> np.ndarray:
        """One-vs-rest shaped scores (n, k), exactly as sklearn's `SVC.decision_function`."""
        if self.kernel == "ridge":
            return self._ridge_scores(features)
        return ovr_scores(self.pair_scores(features), len(self.categories))

    def _ridge_scores(self, features: np.ndarray) -> np.ndarray:
        scores: np.ndarray = normalise(features) @ self.dual_coef.T + self.intercept
        return scores

    def pair_scores(self, features: np.ndarray) -> np.ndarray:
        """libsvm's one-vs-one decision values (n, pairs), positive when the first class wins."""
        x = normalise(features)
        k = kernel(self.kernel, x @ self.support_vectors.T)
        return svm_pair_scores(k, self.dual_coef, self.intercept, self.n_support)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if len(self.categories) == 1:
            return np.ones((len(features), 1))
        if self.kernel == "ridge":
            return softmax(self._ridge_scores(features) / self.temperature)
        scores = class_scores(self.pair_scores(features), len(self.categories), self.margin_weight)
        return softmax(scores / self.temperature)

    # ----- storage -------------------------------------------------------------------
    def save(self, path: Path) -> None:
        meta = {
            **self.meta,
            # Older duetml cannot read a ridge model: format 2 makes it say so, not "damaged".
            "format": MODEL_FORMAT if self.kernel != "ridge" else 2,
            "categories": self.categories,
            "backbone": self.backbone,
            "kernel": self.kernel,
            "C": self.C,
            "temperature": self.temperature,
            "margin_weight": self.margin_weight,
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "support_vectors": self.support_vectors.astype(np.float32),
            "dual_coef": self.dual_coef,
            "intercept": self.intercept,
            "n_support": self.n_support.astype(np.int64),
            **{f"extra_{name}": array for name, array in self.extras.items()},
        }
        # Uncompressed: float arrays barely compress, and zlib took a second of a re-train.
        atomic.write_with(path, lambda handle: np.savez(handle, **cast("dict[str, Any]", arrays)))

    @classmethod
    def load(cls, path: Path, extras: Collection[str] | None = None) -> TrainedModel:
        """Read arrays only: a crafted file (e.g. a pickle) is refused, never executed.

        `extras` names the extra arrays to read (default: all). Prediction needs few of them,
        and the others (out-of-fold results, one row per training photo) are megabytes at
        5,000 photos, read for nothing on every cold `duetml predict`."""
        broken = ModelFileError(
            f"The model file {path.name} is damaged or not a duetml model: "
            "run `duetml train` again."
        )
        try:
            with np.load(path, allow_pickle=False) as data:
                if not isinstance(data, np.lib.npyio.NpzFile):
                    raise broken
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                arrays = {
                    k: data[k] for k in ("support_vectors", "dual_coef", "intercept", "n_support")
                }
                extras = {
                    k[6:]: data[k]
                    for k in data.files
                    if k.startswith("extra_") and (extras is None or k[6:] in extras)
                }
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, EOFError):
            raise broken from None
        if not isinstance(meta, dict) or meta.get("format", 0) > MODEL_FORMAT:
            raise ModelFileError(
                "The model was saved by a newer duetml: upgrade duetml or run `duetml train` again."
            )
        try:
            model = cls(
                categories=[str(c) for c in meta["categories"]],
                backbone=str(meta["backbone"]),
                kernel=str(meta["kernel"]),
                C=float(meta["C"]),
                temperature=float(meta["temperature"]),
                margin_weight=float(meta.get("margin_weight", 0.0)),
                support_vectors=arrays["support_vectors"].astype(np.float64),
                dual_coef=arrays["dual_coef"].astype(np.float64),
                intercept=arrays["intercept"].astype(np.float64),
                n_support=arrays["n_support"].astype(np.int64),
                meta=meta,
                extras=extras,
            )
        except (KeyError, TypeError, ValueError):
            raise broken from None
        n = len(model.categories)
        if model.kernel == "ridge" and (
            model.dual_coef.ndim != 2
            or model.dual_coef.shape[0] != n
            or model.intercept.shape != (n,)
        ):
            raise broken
        if model.kernel != "ridge" and (
            model.kernel not in {"linear", "rbf"}
            or len(model.n_support) != n
            or model.support_vectors.shape[0] != int(model.n_support.sum())
            or (n > 1 and model.dual_coef.shape != (n - 1, model.support_vectors.shape[0]))
        ):
            raise broken
        return model


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def class_pairs(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) class of every one-vs-one pair, in libsvm's order (0,1), (0,2), ..."""
    first, second = np.triu_indices(n_classes, 1)
    return first, second


def _votes_and_confidence(pair_scores: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
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
    votes, confidence = _votes_and_confidence(pair_scores, n_classes)
    scores: np.ndarray = votes + confidence / (3 * (np.abs(confidence) + 1))
    return scores


def pair_margins(pair_scores: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's mean signed one-vs-one decision value: continuous, unlike votes."""
    _, confidence = _votes_and_confidence(pair_scores, n_classes)
    return confidence / max(n_classes - 1, 1)


def class_scores(pair_scores: np.ndarray, n_classes: int, margin_weight: float) -> np.ndarray:
    """Votes decide the ranking (they are the more accurate rule); the margins make the
    probabilities follow how clear each decision was instead of being the same for every
    photo with the same votes."""
    votes, confidence = _votes_and_confidence(pair_scores, n_classes)
    ovr = votes + confidence / (3 * (np.abs(confidence) + 1))
    scores: np.ndarray = ovr + margin_weight * confidence / max(n_classes - 1, 1)
    return scores


MARGIN_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0)


def fit_calibration(pair_scores: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(margin weight, temperature) minimising held-out log-loss among the weights that lose
    no held-out accuracy. Measured on Caltech-101 (bench/bench_accuracy.py data): log-loss
    0.49 -> 0.37 at the same accuracy, with per-photo confidences that vary 3x more."""
    return _fit_calibration(*_votes_and_confidence(pair_scores, n_classes), y)


def _fit_calibration(
    votes: np.ndarray, confidence: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    ovr = votes + confidence / (3 * (np.abs(confidence) + 1))
    margins = confidence / max(votes.shape[1] - 1, 1)
    best_accuracy = np.mean(ovr.argmax(1) == y)
    best: tuple[float, float, float] | None = None
    for weight in MARGIN_WEIGHTS:
        scores = ovr + weight * margins
        if np.mean(scores.argmax(1) == y) < best_accuracy:
            continue
        temperature = fit_temperature(scores, y)
        p = softmax(scores / temperature)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
        if best is None or loss < best[0]:
            best = (loss, weight, temperature)
    assert best is not None  # weight 0 always qualifies
    return best[1], best[2]


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


def _fit_svc(k_train: np.ndarray, y: np.ndarray, C: float) -> SVC:
    from sklearn.svm import SVC

    svc = SVC(kernel="precomputed", C=C, decision_function_shape="ovo", class_weight="balanced")
    svc.fit(k_train, y)
    return svc


@dataclass
class _FoldFit:
    pair_scores: np.ndarray  # out-of-fold decision values of the fold's test photos


def _block(k: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """k[rows][:, columns]: two `take`s are ~5x faster than `k[np.ix_(rows, columns)]` (measured
    on a 5,238 x 5,238 kernel), which matters five times per candidate."""
    block: np.ndarray = np.take(np.take(k, rows, axis=0), columns, axis=1)
    return block


def _fit_fold(
    k: np.ndarray, y: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, C: float
) -> _FoldFit:
    n_classes = int(y.max()) + 1
    y_train = y[train_idx]
    svc = _fit_svc(_block(k, train_idx, train_idx), y_train, C)
    support = train_idx[svc.support_]
    coef = _libsvm_orientation(svc.dual_coef_, n_classes).reshape(svc.dual_coef_.shape)
    intercept = _libsvm_orientation(svc.intercept_, n_classes).reshape(-1)
    scores = svm_pair_scores(_block(k, test_idx, support), coef, intercept, svc.n_support_)
    return _FoldFit(scores)


def _libsvm_orientation(values: np.ndarray, n_classes: int) -> np.ndarray:
    """Pair scores positive when the pair's first class wins, as libsvm computes them.

    sklearn flips the sign (of the decision values, `dual_coef_` and `intercept_`) in the
    binary case only, so that positive means `classes_[1]`; undo that here.
    """
    if n_classes == 2:
        return -np.asarray(values).reshape(-1, 1)
    return np.asarray(values)


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-out scores.

    Targets are Laplace-smoothed (one pseudo-photo spread over the categories, as if each
    category had been seen once more): with a few dozen photos cross-validation is often
    perfect, and plain maximum likelihood would then drive the temperature to zero and call
    every later mistake "100% sure".
    """
    from scipy.optimize import minimize_scalar

    n, k = scores.shape
    smoothing = k / (n + k)
    targets = np.full((n, k), smoothing / k)
    targets[np.arange(n), y] += 1.0 - smoothing

    def nll(log_t: float) -> float:
        p = softmax(scores / np.exp(log_t))
        return float(-np.mean(np.sum(targets * np.log(p + 1e-12), axis=1)))

    result = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
    return float(np.exp(result.x))


StepCallback = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class PreviousChoice:
    """What the last training chose, and on which data: the first guess for this one."""

    kernel: str
    C: float
    counts: dict[str, int]  # photos per category at the last training

    def still_fits(self, counts: dict[str, int]) -> bool:
        """A small change (same categories, at most REUSE_CHANGE of the photos added or
        removed) keeps the choice; anything more selects again."""
        if set(counts) != set(self.counts) or (self.kernel, self.C) not in CANDIDATES:
            return False
        if sum(counts.values()) < REUSE_ABOVE:
            return False  # a full selection takes a second or two here: always run it
        changed = sum(abs(counts[c] - self.counts[c]) for c in counts)
        return changed <= REUSE_CHANGE * max(sum(self.counts.values()), 1)


REUSE_CHANGE = 0.05
REUSE_ABOVE = 2000  # photos; below, every training selects among all candidates


@dataclass(frozen=True)
class EarlierCrossValidation:
    """The last training's held-out predictions, and the model they were made beside."""

    model: TrainedModel  # predicts the photos added since: it never saw them
    keys: list[str]  # content hash of each held-out row
    labels: list[str]  # the category of each held-out row
    probabilities: np.ndarray  # (m, k), calibrated
    from_folds: np.ndarray  # bool (m,): the row came from a cross-validation fold
    fresh_photos: int  # photos of the last full cross-validation
    folds: int
    candidate_scores: dict[str, float]


def extend_cross_validation(
    earlier: EarlierCrossValidation,
    features: np.ndarray,
    labels: Sequence[str],
    keys: Sequence[str],
    categories: list[str],
) -> CrossValidation | None:
    """The last cross-validation with the photos added since, each predicted by the model
    trained before it; None when that would not be honest or the change is not small.

    Every row stays a prediction by a model that did not see the photo: rows of photos still
    there (same content, same category) keep their fold's prediction, rows of removed photos
    go, and a new photo is predicted by the last model. A photo whose content the last model
    trained on under another category (a move), or a second copy of a photo it saw, could not
    be predicted honestly: then the caller cross-validates afresh. So does it when the photos
    added or removed since the last full cross-validation reach REUSE_CHANGE of its photos,
    or when the categories changed.
    """
    if earlier.model.categories != categories or earlier.fresh_photos < REUSE_ABOVE:
        return None
    rows: dict[tuple[str, str], list[int]] = {}
    for i, pair in enumerate(zip(earlier.keys, earlier.labels, strict=True)):
        rows.setdefault(pair, []).append(i)
    seen = set(earlier.keys)
    kept: list[int] = []  # earlier row per current photo, -1 for a new photo
    for key, label in zip(keys, labels, strict=True):
        matches = rows.get((key, label))
        if matches:
            kept.append(matches.pop())
        elif key in seen:
            return None  # moved, or another copy of a photo the last model trained on
        else:
            kept.append(-1)
    old = np.array(kept, dtype=np.int64)
    new = old < 0
    from_folds = np.zeros(len(old), dtype=bool)
    from_folds[~new] = earlier.from_folds[old[~new]]
    removed = int(earlier.from_folds.sum()) - int(from_folds.sum())
    added = int((~from_folds).sum())
    if removed + added > REUSE_CHANGE * earlier.fresh_photos:
        return None
    probabilities = np.empty((len(old), len(categories)))
    probabilities[~new] = earlier.probabilities[old[~new]]
    if new.any():
        probabilities[new] = earlier.model.predict_proba(features[new])
    predicted = probabilities.argmax(1)
    index = {c: i for i, c in enumerate(categories)}
    y = np.array([index[label] for label in labels])
    return CrossValidation(
        folds=earlier.folds,
        accuracy=float(np.mean(predicted == y)),
        candidate_scores=earlier.candidate_scores,
        predicted=[int(p) for p in predicted],
        probabilities=probabilities,
        reused_choice=True,
        from_folds=from_folds,
        fresh_photos=earlier.fresh_photos,
    )


def _run_parallel(
    jobs: Sequence[Callable[[], _FoldFit]], on_done: Callable[[], None]
) -> list[_FoldFit]:
    """Fold fits in two threads: libsvm releases the GIL, so two cores fit two folds."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(FIT_THREADS, os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        results = []
        for job in jobs:
            results.append(job())
            on_done()
        return results
    from threadpoolctl import threadpool_limits

    # One BLAS thread per fit: two fits already fill two cores, and BLAS threads fighting
    # over them made the small products of each fold ~6x slower (measured).
    with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        results = []
        for future in futures:
            results.append(future.result())
            on_done()
        return results


FIT_THREADS = 2


LINEAR_ABOVE = 10_000  # photos; from here on the O(n d) ridge model replaces the kernel SVM
RIDGE_PENALTIES = (0.1, 0.3, 1.0)


def _why_no_cv(categories: list[str], counts: np.ndarray) -> str:
    small = categories[int(counts.argmin())]
    return (
        f"category {small!r} has only {int(counts.min())} photo, so the model cannot be "
        "cross-validated: add at least one more photo to every category."
    )


def _train_ridge(
    x: np.ndarray,
    y: np.ndarray,
    categories: list[str],
    backbone: str,
    folds: list[tuple[np.ndarray, np.ndarray]] | None,
    report: StepCallback,
    penalty: float = RIDGE_PENALTIES[1],
    temperature: float = 1.0,
    sums: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[TrainedModel, CrossValidation | None]:
    """A one-vs-rest ridge (least-squares) classifier: memory O(n d + d^2), never n x n.

    Every fold and penalty reuses X^T X: a fold's is the total minus its test photos' part,
    so cross-validation costs one (d x d) solve per fold and penalty. Measured on the Caltech
    subset (5,233 photos, 5-fold): 0.9356 at penalty 0.3, against 0.9396 for the kernel SVM.
    """
    from scipy.linalg import cho_factor, cho_solve

    n_classes = len(categories)
    ones = np.ones((len(x), 1))
    x1 = np.hstack([x, ones])  # the last column carries the bias
    targets = -np.ones((len(x), n_classes))
    targets[np.arange(len(x)), y] = 1.0
    report("kernel", 0, 1)
    # The sums per fold's test photos, added up for the totals: X^T X is computed once, not
    # once for the totals and again for the folds (at 25,000 photos, 40 GFLOP each).
    # `sums`: the totals, already known (the last training's, updated with the new photos).
    fold_sums = [(x1[p].T @ x1[p], x1[p].T @ targets[p]) for _, p in folds or []]
    if sums is not None:
        gram, cross = sums
    elif fold_sums:
        gram = np.sum([g for g, _ in fold_sums], axis=0)
        cross = np.sum([b for _, b in fold_sums], axis=0)
    else:
        gram, cross = x1.T @ x1, x1.T @ targets
    report("kernel", 1, 1)
    dim = x1.shape[1]

    def fit(g: np.ndarray, b: np.ndarray, penalty: float) -> np.ndarray:
        # Cholesky, without the condition-number estimate `solve` adds: the penalty keeps
        # the system well conditioned.
        weights: np.ndarray = cho_solve(cho_factor(g + penalty * np.eye(dim)), b)
        return weights

    cv = None
    if folds is not None:
        total = len(folds) * len(RIDGE_PENALTIES)
        report("selection", 0, total)
        out_of_fold = {p: np.empty((len(x), n_classes)) for p in RIDGE_PENALTIES}
        done = 0
        for (_, test_idx), (g_test, b_test) in zip(folds, fold_sums, strict=True):
            # The fold's sums are the totals minus its test photos'.
            xt = x1[test_idx]
            g_fold, b_fold = gram - g_test, cross - b_test
            for p in RIDGE_PENALTIES:
                out_of_fold[p][test_idx] = xt @ fit(g_fold, b_fold, p)
                done += 1
                report("selection", done, total)
        scores = {p: float(np.mean(out_of_fold[p].argmax(1) == y)) for p in RIDGE_PENALTIES}
        penalty = max(RIDGE_PENALTIES, key=lambda p: scores[p])  # ties: the first listed
        report("calibration", 0, 1)
        temperature = fit_temperature(out_of_fold[penalty], y)
        probabilities = softmax(out_of_fold[penalty] / temperature)
        report("calibration", 1, 1)
        cv = CrossValidation(
            folds=len(folds),
            accuracy=float(np.mean(probabilities.argmax(1) == y)),
            candidate_scores={f"ridge penalty={p:g}": a for p, a in scores.items()},
            predicted=[int(i) for i in probabilities.argmax(1)],
            probabilities=probabilities,
        )
    report("final fit", 0, 1)
    weights = fit(gram, cross, penalty)
    report("final fit", 1, 1)
    model = TrainedModel(
        categories=list(categories),
        backbone=backbone,
        kernel="ridge",
        C=penalty,
        temperature=temperature,
        margin_weight=0.0,
        support_vectors=np.zeros((0, x.shape[1])),
        dual_coef=weights[:-1].T.copy(),
        intercept=weights[-1].copy(),
        n_support=np.zeros(n_classes, dtype=np.int64),
        # Kept with the model (13 MB): the next re-train after photos were only added
        # updates them with those photos instead of recomputing them from all photos.
        extras={RIDGE_GRAM: gram, RIDGE_CROSS: cross},
    )
    return model, cv


RIDGE_GRAM, RIDGE_CROSS = "ridge_gram", "ridge_cross"  # X^T X and X^T targets, with the bias


def _updated_ridge_sums(
    x: np.ndarray,
    y: np.ndarray,
    keys: Sequence[str],
    labels: Sequence[str],
    earlier: EarlierCrossValidation,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The last training's X^T X and X^T targets plus the photos added since; None when a
    photo was removed (its features are gone) or the sums were not kept."""
    gram = earlier.model.extras.get(RIDGE_GRAM)
    cross = earlier.model.extras.get(RIDGE_CROSS)
    n_classes = len(earlier.model.categories)
    dim = x.shape[1] + 1
    if gram is None or cross is None or gram.shape != (dim, dim) or cross.shape != (dim, n_classes):
        return None
    remaining = Counter(zip(earlier.keys, earlier.labels, strict=True))
    new = np.zeros(len(keys), dtype=bool)
    for i, pair in enumerate(zip(keys, labels, strict=True)):
        if remaining[pair]:
            remaining[pair] -= 1
        else:
            new[i] = True
    if any(remaining.values()):
        return None
    x1 = np.hstack([x[new], np.ones((int(new.sum()), 1))])
    targets = -np.ones((len(x1), n_classes))
    targets[np.arange(len(x1)), y[new]] = 1.0
    updated: tuple[np.ndarray, np.ndarray] = (gram + x1.T @ x1, cross + x1.T @ targets)
    return updated


def train(
    features: np.ndarray,
    labels: list[str],
    categories: list[str],
    backbone: str,
    seed: int = 0,
    previous: PreviousChoice | None = None,
    step: StepCallback | None = None,
    keys: Sequence[str] | None = None,
    earlier: EarlierCrossValidation | None = None,
) -> tuple[TrainedModel, CrossValidation | None, str | None]:
    """Fit the SVM. Returns the model, its cross-validation (or None) and why CV was skipped.

    With `earlier` (the last training's held-out results) and `keys` (each photo's content
    hash) after a small change, the last cross-validation is extended (see
    `extend_cross_validation`) and only the final model is fitted, with the last training's
    hyper-parameters and calibration: a second or two at 5,000 photos instead of a dozen.
    Otherwise, with `previous` and a small change, only the previous (kernel, C) is
    cross-validated (its accuracy and calibration are measured again, on the new data);
    otherwise every candidate is."""
    report: StepCallback = step or (lambda phase, done, total: None)
    if len(categories) < 2:
        raise NotEnoughDataError(
            "Training needs at least two categories with photos: add another category."
        )
    index = {c: i for i, c in enumerate(categories)}
    y = np.array([index[label] for label in labels])
    counts = np.bincount(y, minlength=len(categories))
    empty = [categories[i] for i, c in enumerate(counts) if c == 0]
    if empty:
        raise NotEnoughDataError(
            f"Category {empty[0]!r} has no photos: add some, or remove the category."
        )
    x = normalise(features, np.float32)
    smallest = int(counts.min())
    if (
        earlier is not None
        and keys is not None
        and (earlier.model.kernel == "ridge") == (len(x) >= LINEAR_ABOVE)
    ):
        extended = extend_cross_validation(earlier, x, labels, keys, categories)
        if extended is not None:
            sums = (
                _updated_ridge_sums(x, y, keys, labels, earlier)
                if earlier.model.kernel == "ridge"
                else None
            )
            model = _refit(x, y, categories, backbone, earlier.model, report, sums)
            return model, extended, None
    if len(x) >= LINEAR_ABOVE:
        from sklearn.model_selection import StratifiedKFold

        folds = (
            list(
                StratifiedKFold(min(MAX_FOLDS, smallest), shuffle=True, random_state=seed).split(
                    x, y
                )
            )
            if smallest >= 2
            else None
        )
        linear_model, linear_cv = _train_ridge(x, y, categories, backbone, folds, report)
        return linear_model, linear_cv, None if linear_cv else _why_no_cv(categories, counts)
    report("kernel", 0, 1)
    gram = x @ x.T  # the one O(n^2 d) product; every candidate and fold reuses it
    kernels: dict[str, np.ndarray] = {"linear": gram}
    candidates = list(CANDIDATES)
    fallback = ("linear", 1.0)  # the choice when there is nothing to cross-validate on
    if previous is not None and previous.still_fits(
        {c: int(counts[i]) for i, c in enumerate(categories)}
    ):
        candidates = [(previous.kernel, previous.C)]
        fallback = candidates[0]
    if smallest < 2:
        candidates = [fallback]
    kinds = {k for k, _ in candidates}
    for kind in kinds - {"linear"}:
        # The Gram matrix is float32 (half the bytes to compute and move); the RBF kernel is
        # written as float64 from it, as libsvm takes it, so no fold block and no final fit
        # is converted again (and `_refit` computes the very same values).
        kernels[kind] = kernel(kind, gram)
    if "linear" not in kinds:
        del kernels["linear"]
    del gram
    report("kernel", 1, 1)
    cv: CrossValidation | None = None
    why_no_cv: str | None = None
    kind, C, temperature, margin_weight = candidates[0][0], candidates[0][1], 1.0, 0.0
    if smallest >= 2:
        from sklearn.model_selection import StratifiedKFold

        n_folds = min(MAX_FOLDS, smallest)
        folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(x, y))
        n_classes = len(categories)
        halving = len(candidates) > FINALISTS and len(y) >= HALVING_ABOVE
        total_fits = (
            len(candidates) + FINALISTS * (n_folds - 1) if halving else len(candidates) * n_folds
        )
        fits_done = 0

        def fitted() -> None:
            nonlocal fits_done
            fits_done += 1
            report("selection", fits_done, total_fits)

        def fit_folds(candidate: tuple[str, float], fold_numbers: list[int]) -> list[_FoldFit]:
            kind, C = candidate
            jobs = [
                partial(_fit_fold, kernels[kind], y, folds[f][0], folds[f][1], C)
                for f in fold_numbers
            ]
            return _run_parallel(jobs, fitted)

        report("selection", 0, total_fits)
        scores: dict[tuple[str, float], float] = {}
        first_fold: dict[tuple[str, float], _FoldFit] = {}
        finalists = candidates
        if halving:
            # Successive halving: every candidate on the first fold, then only the best
            # FINALISTS on all folds; 13 fits instead of 25. The others' (1-fold) scores are
            # reported as screened, so nobody reads them as a 5-fold estimate.
            for candidate in candidates:
                first_fold[candidate] = fit_folds(candidate, [0])[0]
            test0 = folds[0][1]
            screening = {
                c: float(np.mean(ovr_scores(f.pair_scores, n_classes).argmax(1) == y[test0]))
                for c, f in first_fold.items()
            }
            finalists = sorted(candidates, key=lambda c: -screening[c])[:FINALISTS]
            finalists.sort(key=candidates.index)
        best: tuple[float, tuple[str, float], np.ndarray, np.ndarray] | None = None
        for candidate in finalists:
            done = {0: first_fold[candidate]} if candidate in first_fold else {}
            rest = [f for f in range(n_folds) if f not in done]
            fits = dict(zip(rest, fit_folds(candidate, rest), strict=True)) | done
            pairs = np.empty((len(y), fits[0].pair_scores.shape[1]))
            for f, fit in fits.items():
                pairs[folds[f][1]] = fit.pair_scores
            del fits
            votes, confidence = _votes_and_confidence(pairs, n_classes)
            del pairs  # n x pairs: 200 MB at 5,000 photos in 100 categories
            ovr = votes + confidence / (3 * (np.abs(confidence) + 1))
            accuracy = float(np.mean(ovr.argmax(1) == y))
            scores[candidate] = accuracy
            # Best accuracy; ties go to the earlier (simpler) candidate.
            if best is None or accuracy > best[0]:
                best = (accuracy, candidate, votes, confidence)
        screened = (
            {
                f"{k} C={c:g} (first fold only)": screening[(k, c)]
                for k, c in candidates
                if (k, c) not in finalists
            }
            if halving
            else {}
        )
        assert best is not None
        _, (kind, C), votes, confidence = best
        report("calibration", 0, 1)
        margin_weight, temperature = _fit_calibration(votes, confidence, y)
        ovr = votes + confidence / (3 * (np.abs(confidence) + 1))
        calibrated = ovr + margin_weight * confidence / max(n_classes - 1, 1)
        probabilities = softmax(calibrated / temperature)
        report("calibration", 1, 1)
        cv = CrossValidation(
            folds=n_folds,
            accuracy=float(np.mean(probabilities.argmax(1) == y)),
            candidate_scores={f"{k} C={c:g}": s for (k, c), s in scores.items()} | screened,
            predicted=[int(p) for p in probabilities.argmax(1)],
            probabilities=probabilities,
            reused_choice=len(candidates) == 1 and len(CANDIDATES) > 1,
        )
    else:
        why_no_cv = _why_no_cv(categories, counts)
    report("final fit", 0, 1)
    if kind not in kernels:
        gram = x @ x.T
        kernels[kind] = kernel(kind, gram)
    svc = _fit_svc(kernels[kind], y, C)
    report("final fit", 1, 1)
    model = _svm_model(svc, x, categories, backbone, kind, C, temperature, margin_weight)
    return model, cv, why_no_cv


def _svm_model(
    svc: SVC,
    x: np.ndarray,
    categories: list[str],
    backbone: str,
    kind: str,
    C: float,
    temperature: float,
    margin_weight: float,
) -> TrainedModel:
    return TrainedModel(
        categories=list(categories),
        backbone=backbone,
        kernel=kind,
        C=C,
        temperature=temperature,
        margin_weight=margin_weight,
        support_vectors=x[svc.support_].astype(np.float64),
        dual_coef=_libsvm_orientation(svc.dual_coef_, len(categories)).reshape(
            svc.dual_coef_.shape
        ),
        intercept=_libsvm_orientation(svc.intercept_, len(categories)).reshape(-1),
        n_support=np.asarray(svc.n_support_),
    )


def _refit(
    x: np.ndarray,
    y: np.ndarray,
    categories: list[str],
    backbone: str,
    earlier: TrainedModel,
    report: StepCallback,
    ridge_sums: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainedModel:
    """The final model only, with the earlier model's hyper-parameters and calibration: the
    same model a full training gives when it selects the same (kernel, C)."""
    if earlier.kernel == "ridge":
        model, _ = _train_ridge(
            x,
            y,
            categories,
            backbone,
            None,
            report,
            penalty=earlier.C,
            temperature=earlier.temperature,
            sums=ridge_sums,
        )
        return model
    report("kernel", 0, 1)
    gram = x @ x.T  # float32
    # libsvm takes float64: the RBF kernel is written as float64 block by block (the linear
    # one is the Gram matrix, which scikit-learn converts as in a full training).
    k = kernel(earlier.kernel, gram)
    del gram
    report("kernel", 1, 1)
    report("final fit", 0, 1)
    svc = _fit_svc(k, y, earlier.C)
    report("final fit", 1, 1)
    return _svm_model(
        svc,
        x,
        categories,
        backbone,
        earlier.kernel,
        earlier.C,
        earlier.temperature,
        earlier.margin_weight,
    )
