"""The SVM: NumPy prediction equals scikit-learn's, probabilities are calibrated, no pickle."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.svm import SVC

from duetml import classifier
from duetml.classifier import SvmModel, TrainedModel, ridge, selection
from duetml.errors import ModelFileError, NotEnoughDataError


def _blobs(
    n_classes: int, per_class: int, dim: int = 24, spread: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    xn = classifier.normalise(x, np.float32)  # training's kernel is float32
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


@pytest.mark.slow
def test_cross_validation_and_calibration_on_separable_and_noisy_data() -> None:
    x, y, _ = _blobs(4, 40, spread=0.5)
    names = list("abcd")
    model, cv, why = classifier.train(x, [names[i] for i in y], names, "test")
    assert cv is not None
    assert why is None and cv.folds == 5 and cv.accuracy > 0.95
    noisy_x, noisy_y, _ = _blobs(4, 40, spread=6.0)
    noisy_model, noisy_cv, _ = classifier.train(noisy_x, [names[i] for i in noisy_y], names, "test")
    assert noisy_cv is not None
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
    assert cv is None and "'c' has only 1 photo" in str(why)
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
    def __reduce__(self) -> tuple[Any, tuple[str]]:
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


def _loop_votes_and_margins(pair_scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The definition, one pair at a time (libsvm's order (0,1), (0,2), ..., (1,2), ...)."""
    votes, confidence = np.zeros((len(pair_scores), k)), np.zeros((len(pair_scores), k))
    pair = 0
    for i in range(k):
        for j in range(i + 1, k):
            s = pair_scores[:, pair]
            confidence[:, i] += s
            confidence[:, j] -= s
            votes[s >= 0, i] += 1
            votes[s < 0, j] += 1
            pair += 1
    return votes, confidence


@pytest.mark.parametrize("k", [2, 3, 7, 30])
def test_vectorised_one_vs_one_scores_equal_the_pair_by_pair_definition(k: int) -> None:
    rng = np.random.default_rng(k)
    pairs = rng.normal(size=(50, k * (k - 1) // 2))
    pairs[0, 0] = 0.0  # a tie counts for the first class, as in libsvm
    votes, confidence = _loop_votes_and_margins(pairs, k)
    expected = votes + confidence / (3 * (np.abs(confidence) + 1))
    assert np.allclose(classifier.ovr_scores(pairs, k), expected, atol=1e-12)
    assert np.allclose(classifier.pair_margins(pairs, k), confidence / (k - 1), atol=1e-12)
    assert np.allclose(
        classifier.class_scores(pairs, k, 2.0), expected + 2.0 * confidence / (k - 1), atol=1e-12
    )


def test_pair_scores_from_support_vectors_equal_sklearn_in_blocks() -> None:
    x, y, _ = _blobs(5, 25, spread=2.5)
    xn = classifier.normalise(x)
    gram = classifier.kernel("rbf", xn @ xn.T)
    svc = SVC(kernel="precomputed", C=3.0, decision_function_shape="ovo").fit(gram, y)
    k_sv = gram[:, svc.support_]
    # rows_per_block smaller than n: the row blocks must stitch together exactly.
    mine = classifier.svm_pair_scores(
        k_sv, svc.dual_coef_, svc.intercept_, svc.n_support_, rows_per_block=7
    )
    assert np.allclose(mine, svc.decision_function(gram), atol=1e-10)


def test_large_projects_screen_candidates_on_one_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, _ = _blobs(4, 30, spread=3.0)
    names = list("abcd")
    steps = []
    monkeypatch.setattr(selection, "HALVING_ABOVE", 50)
    model, cv, _ = classifier.train(
        x, [names[i] for i in y], names, "t", step=lambda *s: steps.append(s)
    )
    fits = [s for s in steps if s[0] == "selection"]
    n = len(selection.CANDIDATES)
    assert fits[-1] == ("selection", n + 2 * 4, n + 2 * 4)
    # Two finalists with 5-fold scores; the others are labelled as one-fold screens.
    assert cv is not None
    assert sum("first fold only" not in name for name in cv.candidate_scores) == 2
    assert len(cv.candidate_scores) == n
    assert [s[0] for s in steps if s[1] == s[2] and s[0] != "selection"] == [
        "kernel",
        "calibration",
        "final fit",
    ]


@pytest.mark.slow
def test_a_small_change_reuses_the_previous_choice_and_a_big_one_selects_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(selection, "REUSE_ABOVE", 100)
    x, y, _ = _blobs(3, 40, spread=2.0)
    names = ["a", "b", "c"]
    labels = [names[i] for i in y]
    full, full_cv, _ = classifier.train(x, labels, names, "t")
    counts = {c: labels.count(c) for c in names}
    previous = classifier.PreviousChoice(full.kernel, full.C, counts)
    # Two more photos (< 5% of 120): only the previous candidate is cross-validated, and the
    # model is the one a full selection would give when it picks the same candidate.
    more_x = np.concatenate([x, x[:2] + 0.05])
    more_labels = labels + labels[:2]
    fast, fast_cv, _ = classifier.train(more_x, more_labels, names, "t", previous=previous)
    assert fast_cv is not None
    assert fast_cv.reused_choice and list(fast_cv.candidate_scores) == [
        f"{full.kernel} C={full.C:g}"
    ]
    slow, slow_cv, _ = classifier.train(more_x, more_labels, names, "t")
    assert slow_cv is not None
    assert not slow_cv.reused_choice and len(slow_cv.candidate_scores) == 5
    if (slow.kernel, slow.C) == (fast.kernel, fast.C):
        assert np.allclose(fast.predict_proba(x), slow.predict_proba(x))
        assert fast_cv.predicted == slow_cv.predicted
    # A new category, or many more photos, selects again.
    assert not previous.still_fits({**counts, "d": 5})
    assert not previous.still_fits({c: n + 10 for c, n in counts.items()})
    assert previous.still_fits({c: n + 1 for c, n in counts.items()})
    monkeypatch.setattr(selection, "REUSE_ABOVE", 2000)
    assert not previous.still_fits({c: n + 1 for c, n in counts.items()})  # small: select


def _earlier(
    model: classifier.TrainedModel,
    cv: classifier.CrossValidation,
    keys: Sequence[str],
    labels: Sequence[str],
) -> classifier.EarlierCrossValidation:
    return classifier.EarlierCrossValidation(
        model=model,
        keys=list(keys),
        labels=list(labels),
        probabilities=cv.probabilities,
        from_folds=np.ones(len(keys), dtype=bool) if cv.from_folds is None else cv.from_folds,
        fresh_photos=cv.fresh_photos or len(keys),
        folds=cv.folds,
        candidate_scores=cv.candidate_scores,
    )


@pytest.mark.parametrize("linear_above", [10_000, 100])  # the SVM, then the ridge model
def test_a_small_change_extends_the_last_cross_validation(
    monkeypatch: pytest.MonkeyPatch, linear_above: int
) -> None:
    monkeypatch.setattr(selection, "REUSE_ABOVE", 100)
    monkeypatch.setattr(selection, "LINEAR_ABOVE", linear_above)
    x, y, _ = _blobs(3, 50, spread=2.5)
    names = ["a", "b", "c"]
    labels = [names[i] for i in y]
    keys = [f"h{i}" for i in range(len(y))]
    model, cv, _ = classifier.train(x, labels, names, "t", keys=keys)
    assert cv is not None
    earlier = _earlier(model, cv, keys, labels)
    # Three new photos, one removed: every row kept is the last fold's prediction, and the
    # new photos are predicted by the last model, which never saw them.
    x_new, y_new, _ = _blobs(3, 1, spread=2.5, seed=7)
    more_x = np.concatenate([x[1:], x_new])
    more_labels = labels[1:] + [names[i] for i in y_new]
    more_keys = keys[1:] + ["new0", "new1", "new2"]
    steps: list[str] = []
    fast, fast_cv, _ = classifier.train(
        more_x,
        more_labels,
        names,
        "t",
        keys=more_keys,
        earlier=earlier,
        step=lambda phase, done, total: steps.append(phase),
    )
    assert fast_cv is not None and not fast_cv.fresh and fast_cv.added_since == 3
    assert "selection" not in steps and "calibration" not in steps
    assert np.array_equal(fast_cv.probabilities[:-3], cv.probabilities[1:])
    assert np.allclose(fast_cv.probabilities[-3:], model.predict_proba(x_new))
    expected = np.mean(fast_cv.probabilities.argmax(1) == np.concatenate([y[1:], y_new]))
    assert fast_cv.accuracy == pytest.approx(expected)
    # The final model is the one a full training that picks the same candidate fits.
    if linear_above == 100:
        monkeypatch.setattr(ridge, "RIDGE_PENALTIES", (model.C,))
    else:
        monkeypatch.setattr(selection, "CANDIDATES", ((model.kernel, model.C),))
    full, full_cv, _ = classifier.train(more_x, more_labels, names, "t", keys=more_keys)
    assert full_cv is not None and full_cv.fresh
    assert np.allclose(fast.decision(x), full.decision(x))
    # Only the calibration is the last full training's (it needs a fresh cross-validation):
    # with the full training's, the probabilities are the same too.
    assert type(fast) is type(model) and fast.temperature == model.temperature
    fast.temperature = full.temperature
    if isinstance(model, SvmModel):  # the ridge model has no margin weight
        assert isinstance(fast, SvmModel) and isinstance(full, SvmModel)
        assert fast.margin_weight == model.margin_weight
        fast.margin_weight = full.margin_weight
    assert np.allclose(fast.predict_proba(x), full.predict_proba(x))

    # A photo moved to another category, a second copy of a photo the model trained on, a
    # new category, or too many photos added: cross-validated afresh.
    moved = [*labels[:-1], "a" if labels[-1] != "a" else "b"]
    copy = (np.concatenate([x, x[:1]]), [*labels, labels[0]], [*keys, keys[0]])
    many = (
        np.concatenate([x, x[:20] + 0.01]),
        labels + labels[:20],
        keys + [f"m{i}" for i in range(20)],
    )
    for case_x, case_labels, case_keys in [(x, moved, keys), copy, many]:
        assert (
            selection.extend_cross_validation(
                earlier, classifier.normalise(case_x), case_labels, case_keys, names
            )
            is None
        )
    assert selection.extend_cross_validation(earlier, x, labels, keys, ["a", "b", "c", "d"]) is None
    # Changes add up: the photos added since the last fresh cross-validation count.
    extended = _earlier(fast, fast_cv, more_keys, more_labels)
    assert extended.fresh_photos == len(y)
    some = (
        np.concatenate([more_x, x[:5] + 0.01]),
        more_labels + labels[:5],
        more_keys + [f"s{i}" for i in range(5)],
    )
    assert selection.extend_cross_validation(extended, *some[:2], some[2], names) is None
    one = (np.concatenate([more_x, x[:1] + 0.01]), more_labels + labels[:1], more_keys + ["s"])
    again = selection.extend_cross_validation(extended, *one[:2], one[2], names)
    assert again is not None and again.added_since == 4 and again.fresh_photos == len(y)
    if linear_above == 100:
        # Photos only added: the ridge model updates the kept X^T X with them, and fits what
        # computing it from all photos fits.
        updated, _, _ = classifier.train(*one[:2], names, "t", keys=one[2], earlier=extended)
        assert np.array_equal(
            updated.extras[classifier.RIDGE_GRAM],
            fast.extras[classifier.RIDGE_GRAM]
            + np.outer(*[np.append(classifier.normalise(x[:1] + 0.01, np.float32)[0], 1.0)] * 2),
        )
        recomputed, _, _ = classifier.train(*one[:2], names, "t", keys=one[2])
        assert np.allclose(updated.decision(x), recomputed.decision(x))


def test_large_projects_get_the_linear_ridge_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selection, "LINEAR_ABOVE", 100)
    x, y, _ = _blobs(4, 40, spread=2.0)
    names = list("abcd")
    model, cv, why = classifier.train(x, [names[i] for i in y], names, "t")
    assert model.kernel == "ridge" and why is None and cv is not None
    assert cv.accuracy > 0.9 and cv.probabilities.shape == (160, 4)
    assert cv.predicted == [int(i) for i in cv.probabilities.argmax(1)]
    assert set(cv.candidate_scores) == {"ridge penalty=0.1", "ridge penalty=0.3", "ridge penalty=1"}
    model.save(tmp_path / "m.npz")
    loaded = TrainedModel.load(tmp_path / "m.npz")
    probabilities = loaded.predict_proba(x)
    assert np.allclose(probabilities, model.predict_proba(x), atol=1e-5)
    assert np.allclose(probabilities.sum(1), 1.0) and np.mean(probabilities.argmax(1) == y) > 0.9
    # The out-of-fold scores agree with a fit that never saw the fold (the X^T X shortcut).
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import StratifiedKFold

    xn = classifier.normalise(x)
    targets = -np.ones((160, 4))
    targets[np.arange(160), y] = 1
    train_idx, test_idx = next(StratifiedKFold(5, shuffle=True, random_state=0).split(xn, y))
    penalty = model.C
    augmented = np.hstack([xn, np.ones((160, 1))])
    reference = Ridge(alpha=penalty, fit_intercept=False).fit(
        augmented[train_idx], targets[train_idx]
    )
    oof = cv.probabilities[test_idx].argmax(1)
    assert np.mean(reference.predict(augmented[test_idx]).argmax(1) == oof) == 1.0
