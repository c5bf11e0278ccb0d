"""The trained model, how it is stored (plain arrays, read without pickle), and what a
training returns beside it (the cross-validation)."""

from __future__ import annotations

import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from duetml import atomic
from duetml.classifier.calibration import softmax
from duetml.classifier.svm import (
    class_scores,
    kernel,
    libsvm_orientation,
    ovr_scores,
    svm_pair_scores,
)
from duetml.errors import ModelFileError

if TYPE_CHECKING:
    from sklearn.svm import SVC

MODEL_FORMAT = 2  # since the ridge model; duetml before it reads 1 and refuses 2


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


@dataclass(kw_only=True)
class TrainedModel(ABC):
    """What every model offers, the kernel SVM (`SvmModel`) and the ridge model of large
    projects (`RidgeModel`) alike: scores, calibrated probabilities, storage.

    `load` reads either kind; both are stored in the same four array slots (see `_stored`),
    so a file written before the ridge model had a type of its own reads the same."""

    categories: list[str]
    backbone: str
    kernel: str  # which model: "linear" or "rbf" (the SVM's kernel), or "ridge"
    C: float  # the SVM's C; the ridge model's penalty
    temperature: float
    meta: dict[str, Any] = field(default_factory=dict)
    # Named arrays stored beside the model, e.g. the out-of-fold probabilities the data review
    # reads; saved as plain arrays (prefix "extra_"), so loading stays pickle-free.
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    # ----- prediction ----------------------------------------------------------------
    @abstractmethod
    def decision(self, features: np.ndarray) -> np.ndarray:
        """Scores (n, k): the highest is the predicted category."""

    @abstractmethod
    def _calibration_scores(self, features: np.ndarray) -> np.ndarray:
        """The scores (n, k) whose softmax at the temperature is the probabilities."""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if len(self.categories) == 1:
            return np.ones((len(features), 1))
        return softmax(self._calibration_scores(features) / self.temperature)

    # ----- storage -------------------------------------------------------------------
    @abstractmethod
    def _stored(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """This kind's meta entries, and its arrays in the slots `_ARRAYS` names."""

    @abstractmethod
    def _is_consistent(self) -> bool:
        """The arrays' shapes fit together and with the categories."""

    def save(self, path: Path) -> None:
        own_meta, own_arrays = self._stored()
        meta = {
            **self.meta,
            # Duetml from before the ridge model reads format 1 only: it says "saved by a
            # newer duetml" instead of "damaged".
            "format": MODEL_FORMAT,
            "categories": self.categories,
            "backbone": self.backbone,
            "kernel": self.kernel,
            "C": self.C,
            "temperature": self.temperature,
            **own_meta,
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            **own_arrays,
            **{f"extra_{name}": array for name, array in self.extras.items()},
        }
        # Uncompressed: float arrays barely compress, and zlib took a second of a re-train.
        atomic.write_with(path, lambda handle: np.savez(handle, **cast("dict[str, Any]", arrays)))

    @staticmethod
    def load(path: Path, extras: Collection[str] | None = None) -> TrainedModel:
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
                arrays = {k: data[k] for k in _ARRAYS}
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
        kind = RidgeModel if meta.get("kernel") == "ridge" else SvmModel
        try:
            model = kind._from_stored(meta, arrays, extras)
        except (KeyError, TypeError, ValueError):
            raise broken from None
        if not model._is_consistent():
            raise broken
        return model

    @classmethod
    @abstractmethod
    def _from_stored(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], extras: dict[str, np.ndarray]
    ) -> TrainedModel:
        """The model from its file's meta and arrays; KeyError, TypeError or ValueError when
        they are not a model's."""


# The array slots of a model file. The ridge model stores its weights and bias in the SVM's
# dual_coef and intercept, with no support vectors: the layout of the files written when one
# type held both.
_ARRAYS = ("support_vectors", "dual_coef", "intercept", "n_support")


def _common(meta: dict[str, Any], extras: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fields every model reads from its file's meta."""
    return {
        "categories": [str(c) for c in meta["categories"]],
        "backbone": str(meta["backbone"]),
        "C": float(meta["C"]),
        "temperature": float(meta["temperature"]),
        "meta": meta,
        "extras": extras,
    }


@dataclass(kw_only=True)
class SvmModel(TrainedModel):
    """The kernel SVM, as libsvm's one-vs-one arrays; prediction is NumPy only."""

    margin_weight: float  # of the continuous margins beside the votes (calibration)
    support_vectors: np.ndarray  # normalised features of the support vectors
    dual_coef: np.ndarray  # (k - 1, support vectors), libsvm's layout
    intercept: np.ndarray  # (pairs,), positive when the pair's first class wins
    n_support: np.ndarray  # (k,) support vectors per class, in order

    @classmethod
    def from_svc(
        cls,
        svc: SVC,
        x: np.ndarray,
        categories: list[str],
        backbone: str,
        kind: str,
        C: float,
        temperature: float,
        margin_weight: float,
    ) -> SvmModel:
        """The model of a fitted precomputed-kernel SVC, trained on the normalised `x`."""
        return cls(
            categories=list(categories),
            backbone=backbone,
            kernel=kind,
            C=C,
            temperature=temperature,
            margin_weight=margin_weight,
            support_vectors=x[svc.support_].astype(np.float64),
            dual_coef=libsvm_orientation(svc.dual_coef_, len(categories)).reshape(
                svc.dual_coef_.shape
            ),
            intercept=libsvm_orientation(svc.intercept_, len(categories)).reshape(-1),
            n_support=np.asarray(svc.n_support_),
        )

    def decision(self, features: np.ndarray) -> np.ndarray:
        """One-vs-rest shaped scores (n, k), exactly as sklearn's `SVC.decision_function`."""
        return ovr_scores(self.pair_scores(features), len(self.categories))

    def pair_scores(self, features: np.ndarray) -> np.ndarray:
        """libsvm's one-vs-one decision values (n, pairs), positive when the first class wins."""
        x = normalise(features)
        k = kernel(self.kernel, x @ self.support_vectors.T)
        return svm_pair_scores(k, self.dual_coef, self.intercept, self.n_support)

    def _calibration_scores(self, features: np.ndarray) -> np.ndarray:
        return class_scores(self.pair_scores(features), len(self.categories), self.margin_weight)

    def _stored(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"margin_weight": self.margin_weight}, {
            "support_vectors": self.support_vectors.astype(np.float32),
            "dual_coef": self.dual_coef,
            "intercept": self.intercept,
            "n_support": self.n_support.astype(np.int64),
        }

    @classmethod
    def _from_stored(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], extras: dict[str, np.ndarray]
    ) -> SvmModel:
        return cls(
            **_common(meta, extras),
            kernel=str(meta["kernel"]),
            margin_weight=float(meta.get("margin_weight", 0.0)),
            support_vectors=arrays["support_vectors"].astype(np.float64),
            dual_coef=arrays["dual_coef"].astype(np.float64),
            intercept=arrays["intercept"].astype(np.float64),
            n_support=arrays["n_support"].astype(np.int64),
        )

    def _is_consistent(self) -> bool:
        n = len(self.categories)
        return (
            self.kernel in {"linear", "rbf"}
            and len(self.n_support) == n
            and self.support_vectors.shape[0] == int(self.n_support.sum())
            and (n <= 1 or self.dual_coef.shape == (n - 1, self.support_vectors.shape[0]))
        )


@dataclass(kw_only=True)
class RidgeModel(TrainedModel):
    """The linear one-vs-rest model of large projects: scores = normalise(x) W^T + b."""

    kernel: str = field(default="ridge", init=False)
    weights: np.ndarray  # (k, d)
    bias: np.ndarray  # (k,)

    def decision(self, features: np.ndarray) -> np.ndarray:
        scores: np.ndarray = normalise(features) @ self.weights.T + self.bias
        return scores

    def _calibration_scores(self, features: np.ndarray) -> np.ndarray:
        return self.decision(features)

    def _stored(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"margin_weight": 0.0}, {
            "support_vectors": np.zeros((0, self.weights.shape[1]), dtype=np.float32),
            "dual_coef": self.weights,
            "intercept": self.bias,
            "n_support": np.zeros(len(self.categories), dtype=np.int64),
        }

    @classmethod
    def _from_stored(
        cls, meta: dict[str, Any], arrays: dict[str, np.ndarray], extras: dict[str, np.ndarray]
    ) -> RidgeModel:
        return cls(
            **_common(meta, extras),
            weights=arrays["dual_coef"].astype(np.float64),
            bias=arrays["intercept"].astype(np.float64),
        )

    def _is_consistent(self) -> bool:
        n = len(self.categories)
        return self.weights.ndim == 2 and self.weights.shape[0] == n and self.bias.shape == (n,)


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
