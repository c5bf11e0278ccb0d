"""What one photo of the project is: its category, training or test set, when it was added,
and what the model makes of it, saying where that answer comes from.

For a training photo the honest answer is the cross-validated one (the model that predicted it
never saw it); the trained model's own answer for a photo it learnt from says little. Test
photos are never trained on, so the model's answer is the held-out one there.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from PIL import Image

from duetml.errors import DuetmlError, NoModelError
from duetml.project import Project

TOP = 3
EXIF_ORIENTATION = 0x0112


class Ranked(msgspec.Struct):
    category: str
    probability: float  # 0-1, to 4 decimals


class PhotoPrediction(msgspec.Struct):
    category: str
    confidence: float  # 0-1, to 4 decimals
    source: str  # "cross-validation" or "model"
    note: str  # one sentence saying what this answer is worth
    top: list[Ranked] = msgspec.field(default_factory=list)


class PhotoFacts(msgspec.Struct):
    """POST /api/images/facts (a msgspec Struct: see review/types for why)."""

    image: str
    category: str
    split: str  # "train" or "test"
    added_at: float  # when the file was stored in the project (its modification time)
    size_bytes: int
    width: int | None
    height: int | None
    prediction: PhotoPrediction | None
    no_prediction: str | None  # why there is no prediction, when there is none


def _answer(source: str, note: str, ranking: list[tuple[str, float]]) -> PhotoPrediction:
    """The prediction whose ranking (best first) is ``ranking``."""
    top = [Ranked(category, round(probability, 4)) for category, probability in ranking]
    return PhotoPrediction(top[0].category, top[0].probability, source, note, top)


def photo_facts(project: Project, rel: str) -> PhotoFacts:
    """The facts of the photo ``rel`` (train/hat/ab12.jpg); a missing model is no error."""
    record = project.image(rel)
    stat = record.path.stat()
    width, height = _dimensions(record.path)
    prediction: PhotoPrediction | None = None
    why_none: str | None = None
    try:
        prediction = _prediction(project, record.rel, record.split)
    except NoModelError:
        why_none = "No model yet: train one to see what it predicts for this photo."
    except DuetmlError as exc:
        why_none = str(exc)
    return PhotoFacts(
        image=record.rel,
        category=record.category,
        split=record.split,
        added_at=stat.st_mtime,  # imports write the file; moves keep its time
        size_bytes=stat.st_size,
        width=width,
        height=height,
        prediction=prediction,
        no_prediction=why_none,
    )


def _prediction(project: Project, rel: str, split: str) -> PhotoPrediction:
    from duetml.prediction import load_model
    from duetml.training import project_features

    model = load_model(project)
    categories = model.categories
    if split == "train":
        held_out = _cross_validated(model.meta, model.extras, categories, rel)
        if held_out is not None:
            return held_out
    record = project.image(rel)
    x, usable, skipped, _ = project_features(project, [record])
    if not usable:
        reason = skipped[0][1] if skipped else "it could not be read"
        raise DuetmlError(f"The model cannot look at this photo: {reason}")
    ranking = _ranking(model.predict_proba(x)[0], categories)
    if split == "test":
        note = "The trained model's answer; test photos are never used for training."
    elif model.meta.get("cv_results"):
        # Cross-validation covered every training photo of that run: this one came later.
        note = (
            "The trained model's answer; the photo was added or moved here after the last "
            "training, so the model has not learnt it under this category."
        )
    else:
        note = (
            "The model's own answer, which may have learnt this very photo (there was no "
            "cross-validation to give a held-out one)."
        )
    return _answer("model", note, ranking)


def _cross_validated(
    meta: dict[str, Any], extras: dict[str, np.ndarray], categories: list[str], rel: str
) -> PhotoPrediction | None:
    """The out-of-fold answer for a photo the last training cross-validated, if any."""
    rels = extras.get("oof_rels")
    probabilities = extras.get("oof_probabilities")
    note = "Cross-validated: predicted by a model trained without this photo."
    if rels is not None and probabilities is not None and len(rels) == len(probabilities):
        found = np.flatnonzero(rels == rel)
        if found.size:
            ranking = _ranking(probabilities[int(found[0])], categories)
            return _answer("cross-validation", note, ranking)
    for row in meta.get("cv_results") or []:
        if row and row[0] == rel:
            return _answer("cross-validation", note, [(str(row[2]), float(row[3]))])
    return None


def _ranking(row: np.ndarray, categories: list[str]) -> list[tuple[str, float]]:
    order = np.argsort(-row)[:TOP]
    return [(categories[int(i)], float(row[int(i)])) for i in order]


def _dimensions(path: Any) -> tuple[int | None, int | None]:
    """Width and height from the file's header alone (nothing is decoded)."""
    try:
        with Image.open(path) as image:
            width, height = int(image.width), int(image.height)
            # As the photo is shown: EXIF orientations 5-8 turn it a quarter.
            if image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width
            return width, height
    except (OSError, ValueError, Image.DecompressionBombError):
        return None, None
