"""Evaluating a project's model: on its test set when it has one, else the out-of-fold
results of the last training's cross-validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import msgspec
import numpy as np

from duetml import abstention
from duetml.classifier import TrainedModel, normalise
from duetml.errors import DuetmlError, NotEnoughDataError, StaleModelError
from duetml.prediction import (
    abstention_rule,
    load_model,
    model_is_stale,
    vanished_categories,
    vanished_warning,
)
from duetml.training import project_features

if TYPE_CHECKING:
    from duetml.project import Project


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


class EvalReport(msgspec.Struct, kw_only=True):
    """`duetml eval --json`, and POST /api/evaluation's answer (with the matrix's cells)."""

    source: str  # "test set" or "cross-validation"
    categories: list[str]
    accuracy: float
    confusion: list[list[int]]  # rows: true, columns: predicted
    per_category: list[CategoryScores]
    mistakes: list[Mistake]
    stale: bool = msgspec.field(name="model_older_than_data")
    # A separate figure, on a test set only: how many of its photos `predict` would answer
    # "not sure" on, and the accuracy on the others. Every figure above counts the closest
    # guess, as before; abstention changes none of them.
    not_sure: NotSureFigure | None

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
        per_category=_per_category(confusion, categories),
        mistakes=mistakes,
        stale=model_is_stale(project, model),
        not_sure=not_sure,
    )
    project.log.record("evaluate", on=source, accuracy=round(report.accuracy, 4))
    return report


def _per_category(confusion: np.ndarray, categories: list[str]) -> list[CategoryScores]:
    """Precision, recall and F1 of each category from the confusion matrix (rows: true)."""
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
    return per_category
