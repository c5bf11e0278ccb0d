"""The trained model, how it is stored (plain arrays, read without pickle), and what a
training returns beside it (the cross-validation)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from duetml import atomic
from duetml.classifier.calibration import softmax
from duetml.classifier.svm import class_scores, kernel, ovr_scores, svm_pair_scores
from duetml.errors import ModelFileError

MODEL_FORMAT = 2  # written as 1 for SVM models, which older duetml reads


def normalise(features: np.ndarray, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
    """Unit-length rows. Training passes float32: the n x n Gram product, the kernel and the
    fold blocks then move half the bytes (the product itself is ~2x faster), and the model
    stores its support vectors as float32 anyway; prediction stays float64."""
    features = np.asarray(features, dtype=dtype)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    normalised: np.ndarray = features / np.maximum(norms, 1e-12)
    return normalised


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


StepCallback = Callable[[str, int, int], None]  # (phase, done, total)
