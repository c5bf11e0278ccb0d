"""Training a project: its photos' features (cached), the model fitted on them and saved
beside the project, with what the next training and the data review read from it. What the
CLI and the web UI share; predicting is in `prediction`, evaluating in `evaluation`."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from duetml import __version__, abstention, locks
from duetml.backbones import INPUT_SIZE
from duetml.classifier import (
    EarlierCrossValidation,
    PreviousChoice,
    TrainedModel,
    train,
)
from duetml.classifier.model import CrossValidation, StepCallback
from duetml.errors import DuetmlError, NotEnoughDataError
from duetml.features import FeatureCache, Progress, ProgressCallback, fill_cache
from duetml.prediction import load_model, model_path
from duetml.project import ImageRecord, Project, fingerprint_of

# What each training phase is called on the page and in the terminal (Progress.phase).
PHASE_LABELS = {
    "features": "Extracting features",
    "kernel": "Comparing every photo with every other",
    "selection": "Cross-validating the SVM",
    "calibration": "Calibrating the probabilities",
    "not sure": "Measuring how far photos sit from the training photos",
    "final fit": "Fitting the final SVM",
    "saving": "Saving the model",
}


class SVMChoice(msgspec.Struct):
    kernel: str
    C: float
    reused_choice: bool  # (kernel, C) kept from the last selection, not selected again


class Skipped(msgspec.Struct):
    image: str  # project-relative path
    reason: str


class TrainReport(msgspec.Struct, kw_only=True):
    """`duetml train --json`, and the trainer's result on the page (TrainState.result)."""

    images: int
    categories: list[str]
    extracted: int  # photos whose features were computed (the others were cached)
    seconds: float  # rounded to the millisecond
    cv_accuracy: float | None
    cv_folds: int | None
    why_no_cv: str | None
    # The accuracy extends the last full cross-validation (of `cv_fresh_photos` photos) with
    # `cv_added_since` photos added since, each predicted by the model before it; 0: fresh.
    cv_fresh: bool  # cv_added_since == 0
    cv_fresh_photos: int | None
    cv_added_since: int
    svm: SVMChoice
    skipped: list[Skipped]
    empty_categories: list[str]  # left out: no usable photos
    notices: list[str]  # e.g. a damaged cache part set aside

    @property
    def kernel(self) -> str:
        return self.svm.kernel

    @property
    def C(self) -> float:
        return self.svm.C

    @property
    def reused_choice(self) -> bool:
        return self.svm.reused_choice


def feature_cache(project: Project) -> FeatureCache:
    return FeatureCache(project.state_dir / "cache", project.feature_backbone)


def project_features(
    project: Project,
    records: Sequence[ImageRecord],
    progress: ProgressCallback | None = None,
    cache: FeatureCache | None = None,
) -> tuple[np.ndarray, list[ImageRecord], list[tuple[str, str]], dict[str, str]]:
    """Features of project photos via the cache: (matrix, usable records, skipped, hashes)."""
    backbone = project.feature_backbone
    cache = cache if cache is not None else feature_cache(project)
    hashes = project.hashes(records)
    from duetml.review.pixels import PixelRecorder

    # The review's pixel measures are taken as the photos are decoded for their features, so
    # the first review after a training does not decode every photo again.
    recorder = PixelRecorder(project.state_dir)
    try:
        failures = fill_cache(
            cache, [(hashes[r.rel], r.path) for r in records], backbone, progress, recorder
        )
    finally:
        recorder.save()
    usable = [r for r in records if hashes[r.rel] not in failures]
    skipped = [(r.rel, failures[hashes[r.rel]]) for r in records if hashes[r.rel] in failures]
    return cache.matrix([hashes[r.rel] for r in usable]), usable, skipped, hashes


def previous_choice(project: Project, model: TrainedModel | None = None) -> PreviousChoice | None:
    """The (kernel, C) the current model was selected with, and the data it was selected on."""
    if model is None:
        try:
            model = load_model(project)
        except DuetmlError:
            return None
    meta = model.meta
    counts = meta.get("selection_counts") or meta.get("counts")
    if not meta.get("cv_candidates") or not isinstance(counts, dict):
        return None  # never cross-validated: nothing was selected
    return PreviousChoice(model.kernel, model.C, {str(c): int(n) for c, n in counts.items()})


# What a re-train reads of the current model: its held-out results, and the ridge model's
# sums (classifier.RIDGE_GRAM, RIDGE_CROSS) to update with new photos.
EARLIER_CV_EXTRAS = ("oof_probabilities", "oof_keys", "oof_from_folds", "ridge_gram", "ridge_cross")


def earlier_cross_validation(model: TrainedModel) -> EarlierCrossValidation | None:
    """The current model's held-out results, to extend after a small change; None for a model
    saved without them (older duetml, or no cross-validation)."""
    meta, extras = model.meta, model.extras
    try:
        keys, from_folds = extras["oof_keys"], extras["oof_from_folds"]
        probabilities, results = extras["oof_probabilities"], meta["cv_results"]
        fresh_photos, folds = int(meta["cv_fresh_photos"]), int(meta["cv_folds"])
        candidates = {str(k): float(v) for k, v in meta["cv_candidates"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    n = len(results)
    if not (
        len(keys) == len(from_folds) == n and probabilities.shape == (n, len(model.categories))
    ):
        return None
    return EarlierCrossValidation(
        model=model,
        keys=[str(k) for k in keys],
        labels=[str(row[1]) for row in results],
        probabilities=probabilities.astype(np.float64),
        from_folds=from_folds.astype(bool),
        fresh_photos=fresh_photos,
        folds=folds,
        candidate_scores=candidates,
    )


def train_project(
    project: Project,
    progress: ProgressCallback | None = None,
    wait: bool = False,
    reuse_choice: bool = True,
) -> TrainReport:
    """Extract what is missing, fit the SVM, save the model. The old model stays valid until
    the new one replaces it in one `os.replace`, so Ctrl-C or a crash never breaks it.

    After a small change (at most 5% of the photos since the last full selection) the
    previous (kernel, C) is cross-validated alone instead of all candidates; `reuse_choice=
    False` selects among all of them again."""
    started = time.perf_counter()
    busy = "Another training of this project is running: wait for it to finish."
    with locks.hold(project.state_dir / "train.lock", 3600.0 if wait else 0.05, busy):
        records = project.images("train")
        if not records:
            raise NotEnoughDataError(
                "The project has no photos yet: add some with `duetml add CATEGORY PHOTOS...`.",
                web="The project has no photos yet: drop photos on a category, or use Add photos…",
            )
        cache = feature_cache(project)
        cache_before = len(cache)
        x, usable, skipped, hashes = project_features(project, records, progress, cache)
        # The data as it was when training began: a photo added meanwhile makes the model stale.
        fingerprint = fingerprint_of(records, hashes)
        categories = sorted({r.category for r in usable}, key=str.lower)
        empty = [c for c in project.category_names("train") if c not in categories]
        step = _phase_steps(progress)
        previous, earlier = _last_training(project) if reuse_choice else (None, None)
        model, cv, why_no_cv = train(
            x,
            [r.category for r in usable],
            categories,
            project.backbone,
            previous=previous,
            step=step,
            keys=[hashes[r.rel] for r in usable],
            earlier=earlier,
        )
        model.meta.update(
            _training_meta(project, usable, categories, empty, fingerprint, previous, cv, why_no_cv)
        )
        _add_not_sure_rule(model, x, usable, categories, cv, step)
        if cv:
            _keep_out_of_fold(model, cv, usable, hashes)
        step("saving", 0, 1)
        with project.data_lock():
            model.save(model_path(project))
        step("saving", 1, 1)
        seconds = time.perf_counter() - started
        report = TrainReport(
            images=len(usable),
            categories=categories,
            extracted=len(cache) - cache_before,
            seconds=round(seconds, 3),
            cv_accuracy=cv.accuracy if cv else None,
            cv_folds=cv.folds if cv else None,
            why_no_cv=why_no_cv,
            svm=SVMChoice(model.kernel, model.C, reused_choice=bool(cv and cv.reused_choice)),
            cv_fresh=not (cv and cv.added_since),
            cv_added_since=cv.added_since if cv else 0,
            cv_fresh_photos=(cv.fresh_photos or len(usable)) if cv else None,
            notices=list(cache.notices),
            skipped=[Skipped(rel, reason) for rel, reason in skipped],
            empty_categories=empty,
        )
    project.log.record(
        "train",
        images=report.images,
        categories=len(categories),
        cv_accuracy=report.cv_accuracy,
        seconds=round(seconds, 2),
    )
    return report


def _phase_steps(progress: ProgressCallback | None) -> StepCallback:
    """The classifier's (phase, done, total) steps as Progress, timed from now."""
    clock = time.perf_counter()

    def step(phase: str, done: int, total: int) -> None:
        if progress:
            progress(Progress(done, total, time.perf_counter() - clock, phase))

    return step


def _last_training(
    project: Project,
) -> tuple[PreviousChoice | None, EarlierCrossValidation | None]:
    """What the current model offers a re-train: its (kernel, C) and its held-out results;
    (None, None) without a readable model."""
    try:
        current = load_model(project, EARLIER_CV_EXTRAS)
    except DuetmlError:
        return None, None
    return previous_choice(project, current), earlier_cross_validation(current)


def _training_meta(
    project: Project,
    usable: Sequence[ImageRecord],
    categories: list[str],
    empty: list[str],
    fingerprint: str,
    previous: PreviousChoice | None,
    cv: CrossValidation | None,
    why_no_cv: str | None,
) -> dict[str, Any]:
    """What the model file records about its training, beside the arrays."""
    counts = dict(Counter(r.category for r in usable))
    backbone = project.feature_backbone
    return {
        # What the features were computed with: prediction and export use the same.
        "precision": backbone.precision,
        "preprocessing": {
            "input": f"central square of the upright photo, {INPUT_SIZE}x{INPUT_SIZE}, RGB",
            "mean": backbone.mean,
            "std": backbone.std,
            "features": f"global average pool, {backbone.feature_dim} values, L2-normalised",
        },
        "fingerprint": fingerprint,
        "trained_at": time.time(),
        "duetml_version": __version__,
        "images": len(usable),
        "counts": {c: counts[c] for c in categories},
        # The data the (kernel, C) was last selected on: later small changes reuse
        # that choice; a change of more than 5% from it selects again.
        "selection_counts": previous.counts
        if previous is not None and cv is not None and cv.reused_choice
        else {c: counts[c] for c in categories},
        "ignored_empty_categories": empty,
        "cv_accuracy": cv.accuracy if cv else None,
        "cv_folds": cv.folds if cv else None,
        "cv_candidates": cv.candidate_scores if cv else None,
        "cv_reused_choice": bool(cv and cv.reused_choice),
        # How many photos the last full cross-validation had, and how many were added
        # since (predicted by the model trained before them, see classifier.
        # extend_cross_validation): 0 means the figure is a fresh cross-validation.
        "cv_fresh_photos": (cv.fresh_photos or len(usable)) if cv else None,
        "cv_added_since": cv.added_since if cv else None,
        "why_no_cv": why_no_cv,
        # Out-of-fold results, so `eval` can report without refitting anything.
        "cv_results": [
            [r.rel, r.category, categories[p], float(prob.max())]
            for r, p, prob in zip(usable, cv.predicted, cv.probabilities, strict=True)
        ]
        if cv
        else [],
    }


def _add_not_sure_rule(
    model: TrainedModel,
    x: np.ndarray,
    usable: Sequence[ImageRecord],
    categories: list[str],
    cv: CrossValidation | None,
    step: StepCallback,
) -> None:
    """The "not sure" rule and its reference features, stored with the model."""
    step("not sure", 0, 1)
    index = {c: i for i, c in enumerate(categories)}
    fitted = abstention.fit_rule(
        x,
        np.array([index[r.category] for r in usable]),
        cv.probabilities if cv else None,
    )
    if fitted is not None:
        rule, reference = fitted
        model.meta["not_sure"] = rule.as_dict()
        model.extras[abstention.REFERENCE_EXTRA] = reference
    step("not sure", 1, 1)


def _keep_out_of_fold(
    model: TrainedModel, cv: CrossValidation, usable: Sequence[ImageRecord], hashes: dict[str, str]
) -> None:
    """The full out-of-fold matrix, for the data review (confident learning) and the next
    re-train (`earlier_cross_validation`)."""
    model.extras["oof_probabilities"] = cv.probabilities.astype(np.float32)
    model.extras["oof_rels"] = np.array([r.rel for r in usable], dtype=str)
    model.extras["oof_keys"] = np.array([hashes[r.rel] for r in usable], dtype=str)
    model.extras["oof_from_folds"] = (
        cv.from_folds if cv.from_folds is not None else np.ones(len(usable), dtype=bool)
    )
