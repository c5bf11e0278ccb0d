"""Train, evaluate and predict on a project: the workflow the CLI and the web UI share."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from duetml import __version__, abstention, locks
from duetml.backbones import INPUT_SIZE, Backbone, get_backbone
from duetml.classifier import (
    EarlierCrossValidation,
    PreviousChoice,
    TrainedModel,
    normalise,
    train,
)
from duetml.errors import DuetmlError, NoModelError, NotEnoughDataError, StaleModelError
from duetml.features import (
    FeatureCache,
    Progress,
    ProgressCallback,
    features_for_sources,
    fill_cache,
)
from duetml.project import ImageRecord, Project, fingerprint_of

MODEL_FILE = "model/model.npz"
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


@dataclass
class TrainReport:
    images: int
    categories: list[str]
    extracted: int
    seconds: float
    cv_accuracy: float | None
    cv_folds: int | None
    why_no_cv: str | None
    kernel: str
    C: float
    reused_choice: bool = False  # (kernel, C) kept from the last selection, not selected again
    # The accuracy extends the last full cross-validation (of `cv_fresh_photos` photos) with
    # `cv_added_since` photos added since, each predicted by the model before it; 0: fresh.
    cv_added_since: int = 0
    cv_fresh_photos: int | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel, reason)
    empty_categories: list[str] = field(default_factory=list)  # left out: no usable photos
    notices: list[str] = field(default_factory=list)  # e.g. a damaged cache part set aside

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "categories": self.categories,
            "extracted": self.extracted,
            "seconds": round(self.seconds, 3),
            "cv_accuracy": self.cv_accuracy,
            "cv_folds": self.cv_folds,
            "why_no_cv": self.why_no_cv,
            "cv_fresh": self.cv_added_since == 0,
            "cv_fresh_photos": self.cv_fresh_photos,
            "cv_added_since": self.cv_added_since,
            "svm": {"kernel": self.kernel, "C": self.C, "reused_choice": self.reused_choice},
            "skipped": [{"image": r, "reason": why} for r, why in self.skipped],
            "empty_categories": self.empty_categories,
            "notices": self.notices,
        }


def model_path(project: Project) -> Path:
    return project.state_dir / MODEL_FILE


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
        clock = time.perf_counter()

        def step(phase: str, done: int, total: int) -> None:
            if progress:
                progress(Progress(done, total, time.perf_counter() - clock, phase))

        previous, earlier = None, None
        if reuse_choice:
            try:
                current = load_model(project, EARLIER_CV_EXTRAS)
            except DuetmlError:
                pass
            else:
                previous = previous_choice(project, current)
                earlier = earlier_cross_validation(current)
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
        counts = dict(Counter(r.category for r in usable))
        backbone = project.feature_backbone
        model.meta.update(
            {
                # What the features were computed with: prediction and export use the same.
                "precision": backbone.precision,
                "preprocessing": {
                    "input": f"central square of the upright photo, {INPUT_SIZE}x{INPUT_SIZE}, RGB",
                    "mean": backbone.mean,
                    "std": backbone.std,
                    "features": (
                        f"global average pool, {backbone.feature_dim} values, L2-normalised"
                    ),
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
        )
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
        if cv:
            # The full out-of-fold matrix, for the data review (confident learning).
            model.extras["oof_probabilities"] = cv.probabilities.astype(np.float32)
            model.extras["oof_rels"] = np.array([r.rel for r in usable], dtype=str)
            model.extras["oof_keys"] = np.array([hashes[r.rel] for r in usable], dtype=str)
            model.extras["oof_from_folds"] = (
                cv.from_folds if cv.from_folds is not None else np.ones(len(usable), dtype=bool)
            )
        step("saving", 0, 1)
        with project.data_lock():
            model.save(model_path(project))
        step("saving", 1, 1)
        extracted = len(cache) - cache_before
        report = TrainReport(
            images=len(usable),
            categories=categories,
            extracted=extracted,
            seconds=time.perf_counter() - started,
            cv_accuracy=cv.accuracy if cv else None,
            cv_folds=cv.folds if cv else None,
            why_no_cv=why_no_cv,
            kernel=model.kernel,
            C=model.C,
            reused_choice=bool(cv and cv.reused_choice),
            cv_added_since=cv.added_since if cv else 0,
            cv_fresh_photos=(cv.fresh_photos or len(usable)) if cv else None,
            notices=list(cache.notices),
            skipped=skipped,
            empty_categories=empty,
        )
    project.log.record(
        "train",
        images=report.images,
        categories=len(categories),
        cv_accuracy=report.cv_accuracy,
        seconds=round(report.seconds, 2),
    )
    return report


def model_backbone(model: TrainedModel) -> Backbone:
    """The backbone, at the precision, that computed the features the model was trained on
    (models from before int8 existed were all fp32)."""
    return get_backbone(model.backbone, str(model.meta.get("precision", "fp32")))


# The extra arrays prediction reads (see TrainedModel.load): the "not sure" reference.
PREDICTION_EXTRAS = (abstention.REFERENCE_EXTRA,)


def load_model(project: Project, extras: Collection[str] | None = None) -> TrainedModel:
    """The project's model; `extras` limits which extra arrays are read (default: all)."""
    path = model_path(project)
    if not path.is_file():
        raise NoModelError("There is no trained model yet: run `duetml train` first.")
    try:
        model = TrainedModel.load(path, extras)
    except FileNotFoundError:
        raise NoModelError("There is no trained model yet: run `duetml train` first.") from None
    if model.backbone != project.backbone:
        raise NoModelError(
            f"The model was trained with {model.backbone}, but the project now uses "
            f"{project.backbone}: run `duetml train` again."
        )
    return model


def model_is_stale(project: Project, model: TrainedModel) -> bool:
    return model.meta.get("fingerprint") != project.fingerprint()


def vanished_categories(project: Project, model: TrainedModel) -> list[str]:
    """The model's categories that the project no longer has (renamed, merged, removed)."""
    current = set(project.category_names("train"))
    return [c for c in model.categories if c not in current]


def vanished_warning(vanished: Sequence[str], purpose: str = "predictions") -> str:
    names = ", ".join(repr(c) for c in vanished[:5]) + (" ..." if len(vanished) > 5 else "")
    return (
        f"The model still knows {names}, which the project no longer has (renamed, merged or "
        f"removed): run `duetml train` for {purpose} with the current categories."
    )


@dataclass
class Prediction:
    source: str
    ranking: list[tuple[str, float]]  # (category, probability), best first
    error: str | None = None
    # Why the model is not sure (abstention.UNLIKE or TOO_CLOSE), None when it is; the
    # ranking's first entry is then only the closest guess.
    reason: str | None = None

    @property
    def not_sure(self) -> bool:
        return self.reason is not None

    def as_dict(self) -> dict[str, Any]:
        if self.error:
            return {"image": self.source, "error": self.error}
        return {
            "image": self.source,
            "category": self.ranking[0][0],
            "confidence": round(self.ranking[0][1], 4),
            "not_sure": self.not_sure,
            "reason": self.reason,
            "top": [{"category": c, "probability": round(p, 4)} for c, p in self.ranking],
        }

    def summary(self) -> str:
        """ "skirt 95%" or "not sure (closest: skirt 41%)": how the CLI and the log say it."""
        if self.error or not self.ranking:
            return "cannot classify"
        category, probability = self.ranking[0]
        if self.not_sure:
            return f"not sure (closest: {category} {probability:.0%})"
        return f"{category} {probability:.0%}"


def abstention_rule(
    model: TrainedModel,
) -> tuple[abstention.AbstentionRule | None, np.ndarray | None]:
    """The model's "not sure" rule and reference features (None, None for older models)."""
    rule = abstention.AbstentionRule.from_dict(model.meta.get("not_sure"))
    reference = model.extras.get(abstention.REFERENCE_EXTRA)
    if rule is None or reference is None or reference.ndim != 2:
        return None, None
    return rule, reference


def predict_sources(
    project: Project,
    sources: Sequence[Path | bytes],
    labels: Sequence[str],
    top: int = 3,
    model: TrainedModel | None = None,
    abstain: bool = True,
    record: bool = True,
) -> list[Prediction]:
    """Classify photos; with `abstain` (the default) a photo unlike every category or too
    close to call is marked not sure (`Prediction.reason`), otherwise the bare argmax.
    ``record=False`` leaves the log to the caller (the page's live camera sends several
    frames a second and logs them in summary)."""
    model = model if model is not None else load_model(project, PREDICTION_EXTRAS)
    matrix, reasons = features_for_sources(sources, model_backbone(model))
    probabilities = model.predict_proba(matrix)
    rule, reference = abstention_rule(model) if abstain else (None, None)
    doubts = abstention.reasons(rule, reference, normalise(matrix), probabilities)
    predictions = []
    for label, reason, row, doubt in zip(labels, reasons, probabilities, doubts, strict=True):
        if reason:
            predictions.append(Prediction(label, [], reason))
            continue
        order = np.argsort(-row)[:top]
        ranking = [(model.categories[i], float(row[i])) for i in order]
        predictions.append(Prediction(label, ranking, reason=doubt))
    if not record:
        return predictions
    project.log.record(
        "predict",
        images=len(predictions),
        # "skirt 95%" or "not sure (closest: skirt 41%)": the agents read these, and must not
        # take a not-sure answer for a confident one.
        results=[p.summary() if p.ranking else None for p in predictions][:50],
    )
    return predictions


class CategoryScores(TypedDict):
    category: str
    precision: float
    recall: float
    f1: float
    support: int  # photos of this category evaluated


class Mistake(TypedDict):
    image: str  # project-relative path
    true: str
    predicted: str
    confidence: float  # of the wrong prediction, 0-1


class NotSureFigure(TypedDict):
    photos: int  # test photos predict would answer "not sure" on
    of: int  # test photos evaluated
    accuracy_when_sure: float | None  # on the others; None when there are none


@dataclass
class EvalReport:
    source: str  # "test set" or "cross-validation"
    categories: list[str]
    accuracy: float
    confusion: list[list[int]]  # rows: true, columns: predicted
    per_category: list[CategoryScores]
    mistakes: list[Mistake]
    stale: bool
    # A separate figure, on a test set only: how many of its photos `predict` would answer
    # "not sure" on, and the accuracy on the others. Every figure above counts the closest
    # guess, as before; abstention changes none of them.
    not_sure: NotSureFigure | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "categories": self.categories,
            "accuracy": self.accuracy,
            "confusion": self.confusion,
            "per_category": self.per_category,
            "mistakes": self.mistakes,
            "model_older_than_data": self.stale,
            "not_sure": self.not_sure,
        }

    def confused_pairs(self, limit: int = 5) -> list[tuple[str, str, int, float]]:
        """(true, predicted, count, share of true) for the most frequent confusions."""
        pairs = []
        for i, row in enumerate(self.confusion):
            total = sum(row)
            for j, count in enumerate(row):
                if i != j and count:
                    pairs.append((self.categories[i], self.categories[j], count, count / total))
        return sorted(pairs, key=lambda p: (-p[2], -p[3]))[:limit]


def _not_sure_figure(
    model: TrainedModel, x: np.ndarray, probabilities: np.ndarray, truth: list[str]
) -> NotSureFigure | None:
    rule, reference = abstention_rule(model)
    if rule is None or not len(truth):
        return None
    doubts = abstention.reasons(rule, reference, normalise(x), probabilities)
    sure = [
        model.categories[int(p.argmax())] == t
        for p, t, doubt in zip(probabilities, truth, doubts, strict=True)
        if doubt is None
    ]
    return {
        "photos": len(truth) - len(sure),
        "of": len(truth),
        "accuracy_when_sure": float(np.mean(sure)) if sure else None,
    }


def evaluate_project(project: Project) -> EvalReport:
    """On the test set when the project has one, else the out-of-fold cross-validation."""
    model = load_model(project)
    categories = model.categories
    vanished = vanished_categories(project, model)
    if vanished and project.images("test"):
        # Falling back to the old cross-validation would list photos that moved or vanished.
        raise StaleModelError(vanished_warning(vanished, "an evaluation"))
    test_records = [r for r in project.images("test") if r.category in categories]
    not_sure: NotSureFigure | None = None
    if test_records:
        x, usable, _, _ = project_features(project, test_records)
        probabilities = model.predict_proba(x)
        rows = [
            (r.rel, r.category, categories[int(p.argmax())], float(p.max()))
            for r, p in zip(usable, probabilities, strict=True)
        ]
        source = "test set"
        not_sure = _not_sure_figure(model, x, probabilities, [r.category for r in usable])
    else:
        rows = [tuple(r) for r in model.meta.get("cv_results", [])]
        if not rows:
            why = model.meta.get("why_no_cv") or "the model has no cross-validation results."
            raise NotEnoughDataError(
                f"Nothing to evaluate on: {why} Or add a test set under test/CATEGORY/."
            )
        source = f"{model.meta.get('cv_folds')}-fold cross-validation"
    index = {c: i for i, c in enumerate(categories)}
    confusion = np.zeros((len(categories), len(categories)), dtype=int)
    for _, true, predicted, _ in rows:
        if true in index and predicted in index:
            confusion[index[true], index[predicted]] += 1
    per_category: list[CategoryScores] = []
    for i, name in enumerate(categories):
        tp = int(confusion[i, i])
        support = int(confusion[i].sum())
        predicted_as = int(confusion[:, i].sum())
        precision = tp / predicted_as if predicted_as else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_category.append(
            {
                "category": name,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
            }
        )
    mistakes: list[Mistake] = [
        {"image": rel, "true": true, "predicted": predicted, "confidence": round(conf, 4)}
        for rel, true, predicted, conf in rows
        if true != predicted
    ]
    mistakes.sort(key=lambda m: -m["confidence"])
    total = int(confusion.sum())
    if total == 0:
        raise DuetmlError("None of the test photos could be evaluated: check the test/ folder.")
    report = EvalReport(
        source=source,
        categories=categories,
        accuracy=float(np.trace(confusion) / total),
        confusion=confusion.tolist(),
        per_category=per_category,
        mistakes=mistakes,
        stale=model_is_stale(project, model),
        not_sure=not_sure,
    )
    project.log.record("evaluate", on=source, accuracy=round(report.accuracy, 4))
    return report
