"""Mislabels: photos whose out-of-fold prediction confidently disagrees with their category
(confident learning: cleanlab's per-category thresholds), with the category they look like;
test photos are judged by the model with the same thresholds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from duetml.review.types import Finding, Suggestion, make_finding, photos_text

if TYPE_CHECKING:
    import numpy as np

    from duetml.classifier import TrainedModel
    from duetml.review.data import ReviewData

# Thresholds, measured with bench/bench_review.py (see README "Reviewing your data").
# Thresholds, measured with bench/bench_review.py (see README "Reviewing your data").
MISLABEL_MIN_CONFIDENCE = 0.5  # the suggested category must be at least this likely,
MISLABEL_MAX_GIVEN = 1.5  # and the given one at most 1.5 / k (k categories): near chance
MISLABEL_CLEAR = 0.6  # flagged even below confident learning's per-category threshold
MISLABEL_OVER_OFF_DOMAIN = 0.8  # this sure, an off-domain-looking photo is a mislabel


def find_mislabels(data: ReviewData, model: TrainedModel, off_domain: set[str]) -> list[Finding]:
    """Confident learning on the out-of-fold probabilities of the last training. Photos
    unlike every category are left to the outlier finding: moving them would not help."""
    import numpy as np

    categories = model.categories
    index = {c: i for i, c in enumerate(categories)}
    row_of = {r.rel: i for i, r in enumerate(data.records)}
    probs = model.extras.get("oof_probabilities")
    rels = model.extras.get("oof_rels")
    rows: list[tuple[str, np.ndarray]] = []
    if probs is not None and rels is not None and len(probs) == len(rels):
        rows = [(str(rel), p) for rel, p in zip(rels, probs, strict=True) if str(rel) in row_of]
    if not rows or len(categories) < 2:
        return []
    labels = np.array([index[rel.split("/")[1]] for rel, _ in rows])
    pred_probs = np.stack([p for _, p in rows]).astype(np.float64)
    thresholds = _class_thresholds(labels, pred_probs)
    # Measured on Caltech (bench/bench_review.py): confident learning alone flags 7.5% of the
    # photos, mostly honest confusions between similar categories; a misfiled photo is one
    # whose given category the model finds no likelier than chance.
    near_chance = MISLABEL_MAX_GIVEN / len(categories)
    given_p = pred_probs[np.arange(len(labels)), labels]
    issues = _label_issues(labels, pred_probs) | _clearly_other(labels, pred_probs)
    issues &= given_p <= near_chance
    flagged: list[tuple[str, str, float, float]] = []  # rel, suggested, confidence, given p
    for i in np.flatnonzero(issues):
        rel = rows[i][0]
        p = pred_probs[i].copy()
        given = p[labels[i]]
        p[labels[i]] = -1.0
        best = int(p.argmax())
        if p[best] >= MISLABEL_MIN_CONFIDENCE:
            flagged.append((rel, categories[best], float(p[best]), float(given)))
    # Test photos: held out from training, so the model's own prediction is out of sample;
    # the thresholds are those of the training photos.
    test = [(i, r) for i, r in enumerate(data.records) if r.split == "test" and r.category in index]
    if test:
        test_probs = model.predict_proba(data.x[[i for i, _ in test]])
        test_labels = np.array([index[r.category] for _, r in test])
        confident = pred_probs_argmax_issues(test_labels, test_probs, thresholds)
        confident |= _clearly_other(test_labels, test_probs)
        for (_, record), p, label, hit in zip(
            test, test_probs, test_labels, confident, strict=True
        ):
            if not hit or p[label] > near_chance:
                continue
            other = np.where(np.arange(len(p)) == label, -1.0, p)
            best = int(other.argmax())
            if other[best] >= MISLABEL_MIN_CONFIDENCE:
                flagged.append((record.rel, categories[best], float(other[best]), float(p[label])))
    groups: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
    for rel, suggested, confidence, given_p in flagged:
        # Unlike every category, and the model is not sure where it belongs: an outlier.
        off = rel in off_domain and confidence < MISLABEL_OVER_OFF_DOMAIN
        if off or data.photo_dismissed("mislabel", rel, (rel.split("/")[1], suggested)):
            continue
        groups.setdefault((rel.split("/")[1], suggested), []).append((rel, confidence, given_p))
    findings = []
    for (given_category, suggested), items in groups.items():
        items.sort(key=lambda item: -item[1])
        photos = [rel for rel, _, _ in items]
        confidence = float(np.mean([c for _, c, _ in items]))
        n = len(photos)
        what = photos_text(n)
        verb = "looks" if n == 1 else "look"
        findings.append(
            make_finding(
                "mislabel",
                photos,
                (given_category, suggested),
                0.5 + 0.45 * items[0][1],
                f"{what.capitalize()} in {given_category!r} {verb} like {suggested!r} to the "
                f"model ({confidence:.0%} sure{' on average' if n > 1 else ''}): "
                f"{'it' if n == 1 else 'they'} may be filed in the wrong category.",
                Suggestion(
                    "move",
                    tuple(photos),
                    to=suggested,
                    categories=(given_category,),
                    label=f"Move {photos_text(n)} to {suggested}",
                ),
                {
                    "confidence": round(confidence, 4),
                    "suggested": suggested,
                    "given": given_category,
                },
            )
        )
    return findings


def own_probabilities(model: TrainedModel) -> dict[str, float]:
    """rel -> out-of-fold probability of the photo's own category."""
    probs = model.extras.get("oof_probabilities")
    rels = model.extras.get("oof_rels")
    if probs is None or rels is None or len(probs) != len(rels):
        return {}
    index = {c: i for i, c in enumerate(model.categories)}
    result = {}
    for rel, p in zip(rels, probs, strict=True):
        category = str(rel).split("/")[1]
        if category in index:
            result[str(rel)] = float(p[index[category]])
    return result


def _label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """cleanlab's confident learning (per-category thresholds, prune by noise rate)."""
    import numpy as np

    k = pred_probs.shape[1]
    if len(np.unique(labels)) == k and len(labels) > k:
        import warnings

        from cleanlab.filter import find_label_issues

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mask = find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate", n_jobs=1)
        return np.asarray(mask, dtype=bool)
    # A category without any out-of-fold row (changed since training): the plain confident
    # joint rule, which is what cleanlab's pruning starts from.
    return pred_probs_argmax_issues(labels, pred_probs, _class_thresholds(labels, pred_probs))


def _clearly_other(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Photos the model gives mostly to one other category: confident learning's thresholds
    are the category's mean probability, which a well-separated project pushes so high that
    a shoe 78% "shoes" and 20% "hat" would pass unflagged under `hat`. (The caller also
    requires the given category to be near chance.)"""
    import numpy as np

    rows = np.arange(len(labels))
    other = pred_probs.copy()
    other[rows, labels] = -1.0
    clear: np.ndarray = other.max(1) >= MISLABEL_CLEAR
    return clear


def pred_probs_argmax_issues(
    labels: np.ndarray, pred_probs: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """The confident-joint rule: the most likely category above its own threshold differs
    from the given one."""
    import numpy as np

    above = pred_probs >= thresholds[None, :]
    best = np.where(above, pred_probs, -1.0).argmax(1)
    issues: np.ndarray = above.any(1) & (best != labels)
    return issues


def _class_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Confident learning's per-category threshold: the mean probability of the category
    over the photos filed under it (1.0 where a category has none)."""
    import numpy as np

    k = pred_probs.shape[1]
    thresholds = np.ones(k)
    for j in range(k):
        rows = labels == j
        if rows.any():
            thresholds[j] = float(pred_probs[rows, j].mean())
    return thresholds
