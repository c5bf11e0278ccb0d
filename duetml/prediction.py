"""The project's trained model and predicting with it: where the model file is, loading it,
whether it still fits the project, and classifying photos ("not sure" included).

The cold path of `duetml predict`: it imports NumPy, ONNX Runtime (through the backbone)
and this, never scikit-learn or SciPy; keep it so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np
from msgspec import UNSET, UnsetType

from duetml import abstention
from duetml.backbones import get_backbone
from duetml.classifier import TrainedModel, normalise
from duetml.errors import NoModelError
from duetml.features import features_for_sources

if TYPE_CHECKING:
    from duetml.backbones import Backbone
    from duetml.project import Project

MODEL_FILE = "model/model.npz"


def model_path(project: Project) -> Path:
    return project.state_dir / MODEL_FILE


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


class Ranked(msgspec.Struct):
    category: str
    probability: float  # 0-1, 4 decimals


class Prediction(msgspec.Struct, kw_only=True):
    """`duetml predict --json`'s row and POST /api/predict's: a photo that could not be
    classified has `image` and `error` only (the fields left UNSET are not sent)."""

    image: str  # the photo's name as given
    error: str | UnsetType = UNSET
    category: str | UnsetType = UNSET  # the closest guess
    confidence: float | UnsetType = UNSET  # its probability, 4 decimals
    not_sure: bool | UnsetType = UNSET
    # Why the model is not sure (abstention.UNLIKE or TOO_CLOSE), None when it is; the
    # category is then only the closest guess.
    reason: str | None | UnsetType = UNSET
    top: list[Ranked] | UnsetType = UNSET  # best first

    @classmethod
    def ranked(
        cls, image: str, ranking: Sequence[tuple[str, float]], reason: str | None = None
    ) -> Prediction:
        """From (category, probability) pairs, best first; `reason` if the model is not sure."""
        return cls(
            image=image,
            category=ranking[0][0],
            confidence=round(ranking[0][1], 4),
            not_sure=reason is not None,
            reason=reason,
            top=[Ranked(c, round(p, 4)) for c, p in ranking],
        )

    @property
    def ranking(self) -> list[tuple[str, float]]:
        """(category, probability) pairs, best first; empty for a photo that failed."""
        return [(r.category, r.probability) for r in self.top] if self.top else []

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
            predictions.append(Prediction(image=label, error=reason))
            continue
        order = np.argsort(-row)[:top]
        ranking = [(model.categories[i], float(row[i])) for i in order]
        predictions.append(Prediction.ranked(label, ranking, reason=doubt))
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
