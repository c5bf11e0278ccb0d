"""Training: which model and hyper-parameters (cross-validation, successive halving), reusing
the last training's choice and held-out results after a small change, then the final fit."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import count

import numpy as np

from duetml.classifier.calibration import fit_calibration_to_votes, softmax
from duetml.classifier.model import (
    CrossValidation,
    EarlierCrossValidation,
    RidgeModel,
    StepCallback,
    SvmModel,
    TrainedModel,
    normalise,
)
from duetml.classifier.ridge import train_ridge, updated_ridge_sums
from duetml.classifier.svm import (
    FoldFit,
    calibrated_from_votes,
    fit_fold,
    fit_svc,
    kernel,
    ovr_from_votes,
    ovr_scores,
    votes_and_confidence,
)
from duetml.errors import NotEnoughDataError

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
    jobs: Sequence[Callable[[], FoldFit]], on_done: Callable[[], None]
) -> list[FoldFit]:
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


def _why_no_cv(categories: list[str], counts: np.ndarray) -> str:
    small = categories[int(counts.argmin())]
    return (
        f"category {small!r} has only {int(counts.min())} photo, so the model cannot be "
        "cross-validated: add at least one more photo to every category."
    )


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
    """Fit the model. Returns the model, its cross-validation (or None) and why CV was skipped.

    With `earlier` (the last training's held-out results) and `keys` (each photo's content
    hash) after a small change, the last cross-validation is extended (see
    `extend_cross_validation`) and only the final model is fitted, with the last training's
    hyper-parameters and calibration: a second or two at 5,000 photos instead of a dozen.
    Otherwise, with `previous` and a small change, only the previous (kernel, C) is
    cross-validated (its accuracy and calibration are measured again, on the new data);
    otherwise every candidate is. From LINEAR_ABOVE photos on, the ridge model replaces the
    kernel SVM."""
    report: StepCallback = step or (lambda phase, done, total: None)
    y, counts = _class_indices(labels, categories)
    x = normalise(features, np.float32)
    if earlier is not None and keys is not None:
        extended = _extend_and_refit(x, y, labels, keys, categories, backbone, earlier, report)
        if extended is not None:
            return extended
    if len(x) >= LINEAR_ABOVE:
        folds = _folds(x, y, int(counts.min()), seed)
        linear_model, linear_cv = train_ridge(x, y, categories, backbone, folds, report)
        return linear_model, linear_cv, None if linear_cv else _why_no_cv(categories, counts)
    return _train_svm(x, y, categories, counts, backbone, seed, previous, report)


def _class_indices(labels: list[str], categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's category index, and the photos per category; NotEnoughDataError for
    fewer than two categories or a category without photos."""
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
    return y, counts


def _folds(
    x: np.ndarray, y: np.ndarray, smallest: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Stratified (train, test) folds, as many as the smallest category allows up to
    MAX_FOLDS; None when a category has a single photo."""
    if smallest < 2:
        return None
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(min(MAX_FOLDS, smallest), shuffle=True, random_state=seed)
    return list(splitter.split(x, y))


def _extend_and_refit(
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    keys: Sequence[str],
    categories: list[str],
    backbone: str,
    earlier: EarlierCrossValidation,
    report: StepCallback,
) -> tuple[TrainedModel, CrossValidation, None] | None:
    """After a small change: the last cross-validation extended, and the final model fitted
    with the last training's choice; None when the change is not small (or crosses
    LINEAR_ABOVE, which changes the kind of model)."""
    ridge = isinstance(earlier.model, RidgeModel)
    if ridge != (len(x) >= LINEAR_ABOVE):
        return None
    extended = extend_cross_validation(earlier, x, labels, keys, categories)
    if extended is None:
        return None
    sums = updated_ridge_sums(x, y, keys, labels, earlier) if ridge else None
    model = _refit(x, y, categories, backbone, earlier.model, report, sums)
    return model, extended, None


Candidate = tuple[str, float]  # (kernel, C)


def _train_svm(
    x: np.ndarray,
    y: np.ndarray,
    categories: list[str],
    counts: np.ndarray,
    backbone: str,
    seed: int,
    previous: PreviousChoice | None,
    report: StepCallback,
) -> tuple[SvmModel, CrossValidation | None, str | None]:
    """The kernel SVM: every candidate (or the previous choice) cross-validated on one
    precomputed kernel, the best calibrated on its out-of-fold scores, then fitted on all."""
    candidates = list(CANDIDATES)
    fallback = ("linear", 1.0)  # the choice when there is nothing to cross-validate on
    if previous is not None and previous.still_fits(
        {c: int(counts[i]) for i, c in enumerate(categories)}
    ):
        candidates = [(previous.kernel, previous.C)]
        fallback = candidates[0]
    folds = _folds(x, y, int(counts.min()), seed)
    if folds is None:
        candidates = [fallback]
    report("kernel", 0, 1)
    kernels = _kernels(x, {k for k, _ in candidates})
    report("kernel", 1, 1)
    cv: CrossValidation | None = None
    why_no_cv: str | None = None
    (kind, C), temperature, margin_weight = candidates[0], 1.0, 0.0
    if folds is not None:
        (kind, C), votes, confidence, scores = _select(kernels, y, folds, candidates, report)
        report("calibration", 0, 1)
        margin_weight, temperature = fit_calibration_to_votes(votes, confidence, y)
        probabilities = softmax(
            calibrated_from_votes(votes, confidence, margin_weight) / temperature
        )
        report("calibration", 1, 1)
        cv = CrossValidation(
            folds=len(folds),
            accuracy=float(np.mean(probabilities.argmax(1) == y)),
            candidate_scores=scores,
            predicted=[int(p) for p in probabilities.argmax(1)],
            probabilities=probabilities,
            reused_choice=len(candidates) == 1 and len(CANDIDATES) > 1,
        )
    else:
        why_no_cv = _why_no_cv(categories, counts)
    report("final fit", 0, 1)
    if kind not in kernels:
        kernels[kind] = kernel(kind, x @ x.T)
    svc = fit_svc(kernels[kind], y, C)
    report("final fit", 1, 1)
    model = SvmModel.from_svc(svc, x, categories, backbone, kind, C, temperature, margin_weight)
    return model, cv, why_no_cv


def _kernels(x: np.ndarray, kinds: set[str]) -> dict[str, np.ndarray]:
    """The kernel matrix of each kind, from the one O(n^2 d) product every candidate and fold
    reuses."""
    gram = x @ x.T
    kernels: dict[str, np.ndarray] = {"linear": gram}
    for kind in kinds - {"linear"}:
        # The Gram matrix is float32 (half the bytes to compute and move); the RBF kernel is
        # written as float64 from it, as libsvm takes it, so no fold block and no final fit
        # is converted again (and `_refit` computes the very same values).
        kernels[kind] = kernel(kind, gram)
    if "linear" not in kinds:
        del kernels["linear"]
    return kernels


def _select(
    kernels: dict[str, np.ndarray],
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    candidates: list[Candidate],
    report: StepCallback,
) -> tuple[Candidate, np.ndarray, np.ndarray, dict[str, float]]:
    """The most accurate candidate on all folds (ties: the earlier, simpler one), its
    out-of-fold votes and confidences, and every candidate's score by name.

    Successive halving from HALVING_ABOVE photos: every candidate on the first fold, then only
    the best FINALISTS on all folds; 13 fits instead of 25. The others' (1-fold) scores are
    reported as screened, so nobody reads them as a 5-fold estimate."""
    halving = len(candidates) > FINALISTS and len(y) >= HALVING_ABOVE
    n_folds = len(folds)
    total = len(candidates) + FINALISTS * (n_folds - 1) if halving else len(candidates) * n_folds
    done = count(1)

    def fitted() -> None:
        report("selection", next(done), total)

    report("selection", 0, total)
    first_fold: dict[Candidate, FoldFit] = {}
    finalists: list[Candidate] = candidates
    screened: dict[str, float] = {}
    if halving:
        first_fold, finalists, screened = _screen(kernels, y, folds, candidates, fitted)
    scores: dict[str, float] = {}
    best: tuple[float, Candidate, np.ndarray, np.ndarray] | None = None
    for candidate in finalists:
        votes, confidence = _out_of_fold(
            kernels[candidate[0]], y, folds, candidate[1], first_fold.get(candidate), fitted
        )
        accuracy = float(np.mean(ovr_from_votes(votes, confidence).argmax(1) == y))
        scores[f"{candidate[0]} C={candidate[1]:g}"] = accuracy
        # Best accuracy; ties go to the earlier (simpler) candidate.
        if best is None or accuracy > best[0]:
            best = (accuracy, candidate, votes, confidence)
    assert best is not None
    return best[1], best[2], best[3], scores | screened


def _screen(
    kernels: dict[str, np.ndarray],
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    candidates: list[Candidate],
    fitted: Callable[[], None],
) -> tuple[dict[Candidate, FoldFit], list[Candidate], dict[str, float]]:
    """Every candidate fitted on the first fold: those fits, the FINALISTS (in candidate
    order) and the others' first-fold scores, named as such."""
    first_fold = {
        (kind, C): _fit_folds(kernels[kind], y, folds, C, [0], fitted)[0] for kind, C in candidates
    }
    test0 = folds[0][1]
    n_classes = int(y.max()) + 1
    screening = {
        c: float(np.mean(ovr_scores(f.pair_scores, n_classes).argmax(1) == y[test0]))
        for c, f in first_fold.items()
    }
    finalists = sorted(candidates, key=lambda c: -screening[c])[:FINALISTS]
    finalists.sort(key=candidates.index)
    screened = {
        f"{k} C={c:g} (first fold only)": screening[(k, c)]
        for k, c in candidates
        if (k, c) not in finalists
    }
    return first_fold, finalists, screened


def _out_of_fold(
    k: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    C: float,
    first_fold: FoldFit | None,
    fitted: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray]:
    """One candidate's out-of-fold votes and confidences (n, k), every fold fitted except the
    first when its fit is given (from screening)."""
    done = {0: first_fold} if first_fold is not None else {}
    rest = [f for f in range(len(folds)) if f not in done]
    fits = dict(zip(rest, _fit_folds(k, y, folds, C, rest, fitted), strict=True)) | done
    pairs = np.empty((len(y), fits[0].pair_scores.shape[1]))
    for f, fit in fits.items():
        pairs[folds[f][1]] = fit.pair_scores
    del fits
    n_classes = int(y.max()) + 1
    # `pairs` is n x pairs: 200 MB at 5,000 photos in 100 categories, freed on return.
    return votes_and_confidence(pairs, n_classes)


def _fit_folds(
    k: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    C: float,
    fold_numbers: list[int],
    fitted: Callable[[], None],
) -> list[FoldFit]:
    jobs = [partial(fit_fold, k, y, folds[f][0], folds[f][1], C) for f in fold_numbers]
    return _run_parallel(jobs, fitted)


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
    if isinstance(earlier, RidgeModel):
        model, _ = train_ridge(
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
    if not isinstance(earlier, SvmModel):
        raise TypeError(f"Cannot refit a {type(earlier).__name__}.")
    report("kernel", 0, 1)
    gram = x @ x.T  # float32
    # libsvm takes float64: the RBF kernel is written as float64 block by block (the linear
    # one is the Gram matrix, which scikit-learn converts as in a full training).
    k = kernel(earlier.kernel, gram)
    del gram
    report("kernel", 1, 1)
    report("final fit", 0, 1)
    svc = fit_svc(k, y, earlier.C)
    report("final fit", 1, 1)
    return SvmModel.from_svc(
        svc,
        x,
        categories,
        backbone,
        earlier.kernel,
        earlier.C,
        earlier.temperature,
        earlier.margin_weight,
    )
