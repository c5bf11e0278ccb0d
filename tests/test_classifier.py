"""The SVM: NumPy prediction equals scikit-learn's, probabilities are calibrated, no pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.svm import SVC

from duetml import classifier
from duetml.classifier import TrainedModel
from duetml.errors import ModelFileError, NotEnoughDataError


def _blobs(n_classes: int, per_class: int, dim: int = 24, spread: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 2
    x = np.concatenate([c + spread * rng.normal(size=(per_class, dim)) for c in centres])
    y = np.repeat(np.arange(n_classes), per_class)
    return x, y, centres


@pytest.mark.parametrize("n_classes", [2, 3, 6])
def test_numpy_decision_matches_sklearn(n_classes: int) -> None:
    x, y, centres = _blobs(n_classes, 30, spread=2.0)
    names = [f"c{i}" for i in range(n_classes)]
    model, cv, _ = classifier.train(x, [names[i] for i in y], names, "test")
    xn = classifier.normalise(x)
    reference = SVC(kernel="precomputed", C=model.C, class_weight="balanced").fit(
        classifier.kernel(model.kernel, xn @ xn.T), y
    )
    x_new, _, _ = _blobs(n_classes, 20, spread=2.0, seed=1)
    k_new = classifier.kernel(model.kernel, classifier.normalise(x_new) @ xn.T)
    if n_classes == 2:
        assert (model.decision(x_new).argmax(1) == reference.predict(k_new)).all()
    else:
        # sklearn's "ovr" scores (votes + squashed confidences); its predict() breaks vote
        # ties by class order instead, which is why the scores are compared, not predict().
        assert np.allclose(model.decision(x_new), reference.decision_function(k_new), atol=1e-8)


def test_cross_validation_and_calibration_on_separable_and_noisy_data() -> None:
    x, y, _ = _blobs(4, 40, spread=0.5)
    names = list("abcd")
    model, cv, why = classifier.train(x, [names[i] for i in y], names, "test")
    assert why is None and cv.folds == 5 and cv.accuracy > 0.95
    noisy_x, noisy_y, _ = _blobs(4, 40, spread=6.0)
    noisy_model, noisy_cv, _ = classifier.train(noisy_x, [names[i] for i in noisy_y], names, "test")
    # Calibration: a model that is right less often must also be less sure of itself.
    sure = model.predict_proba(x).max(1).mean()
    unsure = noisy_model.predict_proba(noisy_x).max(1).mean()
    assert noisy_cv.accuracy < 0.9 and unsure < sure
    # Out-of-fold confidence tracks out-of-fold accuracy within a few points.
    assert abs(noisy_cv.probabilities.max(1).mean() - noisy_cv.accuracy) < 0.15
    # Probabilities follow the margins: photos far from the others get surer answers.
    assert noisy_model.predict_proba(noisy_x).max(1).std() > 0.02
    probs = model.predict_proba(x[:5])
    assert np.allclose(probs.sum(1), 1.0) and (probs > 0).all()


def test_one_photo_category_trains_but_says_why_there_is_no_cv() -> None:
    x, y, _ = _blobs(3, 6)
    keep = np.r_[0:6, 6:12, 12:13]
    names = ["a", "b", "c"]
    model, cv, why = classifier.train(x[keep], [names[i] for i in y[keep]], names, "test")
    assert cv is None and "'c' has only 1 photo" in why
    assert model.predict_proba(x[:1]).shape == (1, 3)


def test_training_needs_two_categories() -> None:
    x, y, _ = _blobs(1, 5)
    with pytest.raises(NotEnoughDataError, match="two categories"):
        classifier.train(x, ["a"] * 5, ["a"], "test")


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    x, y, _ = _blobs(3, 20)
    names = ["x", "y", "z"]
    model, _, _ = classifier.train(x, [names[i] for i in y], names, "test")
    model.meta["fingerprint"] = "abc"
    model.save(tmp_path / "m.npz")
    loaded = TrainedModel.load(tmp_path / "m.npz")
    assert loaded.categories == names and loaded.meta["fingerprint"] == "abc"
    assert np.allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-5)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/duetml-pwned-by-pickle",))


def test_a_crafted_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = Path("/tmp/duetml-pwned-by-pickle")
    marker.unlink(missing_ok=True)
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ModelFileError, match="damaged or not a duetml model"):
        TrainedModel.load(path)
    # An .npz whose arrays are pickled objects is refused too.
    np.savez(path, meta=np.array([_Exploit()], dtype=object))
    with pytest.raises(ModelFileError):
        TrainedModel.load(path)
    assert not marker.exists()


def test_a_truncated_model_file_is_refused(tmp_path: Path) -> None:
    x, y, _ = _blobs(2, 10)
    model, _, _ = classifier.train(x, ["a" if i == 0 else "b" for i in y], ["a", "b"], "t")
    model.save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "m.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        TrainedModel.load(tmp_path / "m.npz")
