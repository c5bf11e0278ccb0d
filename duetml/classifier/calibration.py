"""Calibrated probabilities: a temperature, and for the SVM the weight of the continuous
one-vs-one margins beside the votes, both fitted on out-of-fold scores (photos the model
did not see). scipy is imported only when fitting."""

from __future__ import annotations

import numpy as np

from duetml.classifier.svm import ovr_from_votes, votes_and_confidence


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


MARGIN_WEIGHTS = (0.0, 1.0, 2.0, 4.0, 8.0)


def fit_calibration(pair_scores: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(margin weight, temperature) minimising held-out log-loss among the weights that lose
    no held-out accuracy. Measured on Caltech-101 (bench/bench_accuracy.py data): log-loss
    0.49 -> 0.37 at the same accuracy, with per-photo confidences that vary 3x more."""
    return fit_calibration_to_votes(*votes_and_confidence(pair_scores, n_classes), y)


def fit_calibration_to_votes(
    votes: np.ndarray, confidence: np.ndarray, y: np.ndarray
) -> tuple[float, float]:
    """`fit_calibration` from the out-of-fold votes and confidences (n, k)."""
    ovr = ovr_from_votes(votes, confidence)
    margins = confidence / max(votes.shape[1] - 1, 1)
    best_accuracy = np.mean(ovr.argmax(1) == y)
    best: tuple[float, float, float] | None = None
    for weight in MARGIN_WEIGHTS:
        scores = ovr + weight * margins
        if np.mean(scores.argmax(1) == y) < best_accuracy:
            continue
        temperature = fit_temperature(scores, y)
        p = softmax(scores / temperature)
        loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
        if best is None or loss < best[0]:
            best = (loss, weight, temperature)
    assert best is not None  # weight 0 always qualifies
    return best[1], best[2]


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of held-out scores.

    Targets are Laplace-smoothed (one pseudo-photo spread over the categories, as if each
    category had been seen once more): with a few dozen photos cross-validation is often
    perfect, and plain maximum likelihood would then drive the temperature to zero and call
    every later mistake "100% sure".
    """
    from scipy.optimize import minimize_scalar

    n, k = scores.shape
    smoothing = k / (n + k)
    targets = np.full((n, k), smoothing / k)
    targets[np.arange(n), y] += 1.0 - smoothing

    def nll(log_t: float) -> float:
        p = softmax(scores / np.exp(log_t))
        return float(-np.mean(np.sum(targets * np.log(p + 1e-12), axis=1)))

    result = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
    return float(np.exp(result.x))
