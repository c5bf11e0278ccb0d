"""The data review: what is wrong with the photos, found from the features we already cache.

One pass over the cached features and the out-of-fold results of the last training finds

- mislabel: training photos whose out-of-fold prediction confidently disagrees with their
  category (confident learning: cleanlab's per-category thresholds), with the category they
  look like; test photos are judged by the model with the same thresholds;
- outlier: photos unlike the rest of their category, or unlike every category (off-domain),
  from nearest-neighbour distances;
- near_duplicate / leak: re-encoded, resized or slightly cropped copies (feature similarity),
  within a category, across categories, and between training and test (a leak);
- overlap, mixed, small: categories confused both ways, categories whose photos fall into two
  separate groups, and small, imbalanced or empty categories.

The CLI, the page and the agents all read the same `Review`. Every fix goes through the
Project operations, so it is one undoable, logged operation. Thresholds are measured by
bench/bench_review.py on planted problems, not guessed.

Memory stays bounded: neighbours come from scikit-learn's chunked brute-force search, never
an n x n matrix; per-category work is capped at MAX_GROUP photos.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from duetml import atomic, locks
from duetml.errors import DuetmlError, ModelFileError, NoModelError, NotFoundError
from duetml.names import validate_category_name

if TYPE_CHECKING:
    import numpy as np

    from duetml.classifier import TrainedModel
    from duetml.project import ImageRecord, Project

FindingKind = Literal["mislabel", "outlier", "near_duplicate", "leak", "overlap", "mixed", "small"]
Action = Literal["move", "remove", "merge", "keep", "add_photos", "split", "rename", "add_category"]
KINDS: tuple[str, ...] = (
    "mislabel",
    "outlier",
    "near_duplicate",
    "leak",
    "overlap",
    "mixed",
    "small",
)
ACTIONS: tuple[str, ...] = (
    "move",
    "remove",
    "merge",
    "keep",
    "add_photos",
    "split",
    "rename",
    "add_category",
)

REVIEW_VERSION = 1  # bump when the rules change: cached reviews are then recomputed
DISMISSED_FILE = "review-dismissed.json"
CACHE_FILE = "cache/review.json"

# Thresholds, measured with bench/bench_review.py (see README "Reviewing your data").
MISLABEL_MIN_CONFIDENCE = 0.5  # the suggested category must be at least this likely,
MISLABEL_MAX_GIVEN = 1.5  # and the given one at most 1.5 / k (k categories): near chance
MISLABEL_CLEAR = 0.6  # flagged even below confident learning's per-category threshold
MISLABEL_OVER_OFF_DOMAIN = 0.8  # this sure, an off-domain-looking photo is a mislabel
DUPLICATE_SIMILARITY = 0.92  # cosine similarity of features above which photos are copies
DUPLICATE_CANDIDATE = 0.84  # ... above which the pictures themselves are compared
THUMBNAIL_MATCH = 0.9  # correlation of 16x16 grey thumbnails of a copy (resized, re-encoded)
NEIGHBOURS = 10  # neighbours per photo searched in the whole project
OUTLIER_NEIGHBOURS = 5
OFF_DOMAIN_Z = 1.5  # robust z-score of the distance to the nearest category centre,
OFF_DOMAIN_Z_CATEGORY = 2.0  # ... and to its own category's centre,
OFF_DOMAIN_MAX_SHARE = 0.01  # at most 1% of the photos (at least OFF_DOMAIN_MIN_CAP) raised
OFF_DOMAIN_MIN_CAP = 10
OUTLIER_Z = 4.0  # robust z-score of the distance to the nearest photos of its own category
MIXED_CONNECTIVITY = 0.03  # algebraic connectivity below which a category is two groups
MIXED_MIN_PHOTOS = 12
MIXED_MAX_PHOTOS = 300
MIXED_MIN_SHARE = 0.2  # the smaller group holds at least this share of the category
OVERLAP_MIN_SHARE = 0.1  # each of the pair sends at least this share to the other
OVERLAP_MIN_COUNT = 2
TINY_CATEGORY = 5
IMBALANCE_RATIO = 3.0  # a category with fewer than median / ratio photos is imbalanced
MAX_GROUP = 1000  # per-category work (outliers, mixed) samples at most this many photos


# ----- what a review returns ----------------------------------------------------------------
class SuggestionDict(TypedDict):
    action: Action
    photos: list[str]  # project-relative paths
    to: str | None  # the category they go to (move, merge)
    categories: list[str]
    label: str  # the button's words


class FindingDict(TypedDict):
    id: str
    kind: FindingKind
    photos: list[str]
    categories: list[str]
    score: float  # how much it matters, for ordering
    message: str
    suggestion: SuggestionDict | None
    details: dict[str, float | str]


class ReviewDict(TypedDict):
    """`duetml review --json` and GET /api/review."""

    findings: list[FindingDict]
    counts: dict[str, int]  # findings of each kind
    dismissed: int
    model_trained_at: float | None
    stale: bool
    unreviewed: int


@dataclass(frozen=True)
class Suggestion:
    action: Action
    photos: tuple[str, ...] = ()
    to: str | None = None
    categories: tuple[str, ...] = ()
    label: str = ""

    def as_dict(self) -> SuggestionDict:
        return {
            "action": self.action,
            "photos": list(self.photos),
            "to": self.to,
            "categories": list(self.categories),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: object) -> Suggestion:
        """A suggestion from JSON (an agent's proposal, a web request); checks the shape only."""
        if not isinstance(data, dict) or data.get("action") not in ACTIONS:
            raise DuetmlError(f"A suggestion needs an action, one of: {', '.join(ACTIONS)}.")
        photos = data.get("photos") or []
        categories = data.get("categories") or []
        to = data.get("to")
        if not isinstance(photos, list) or not all(isinstance(p, str) for p in photos):
            raise DuetmlError("A suggestion's photos must be a list of photo ids.")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise DuetmlError("A suggestion's categories must be a list of category names.")
        if to is not None and not isinstance(to, str):
            raise DuetmlError("A suggestion's target must be a category name.")
        return cls(
            action=cast(Action, data["action"]),
            photos=tuple(photos),
            to=to,
            categories=tuple(categories),
            label=str(data.get("label") or ""),
        )


@dataclass(frozen=True)
class Finding:
    id: str
    kind: FindingKind
    photos: tuple[str, ...]
    categories: tuple[str, ...]
    score: float
    message: str
    suggestion: Suggestion | None
    details: dict[str, float | str] = field(default_factory=dict)

    def as_dict(self) -> FindingDict:
        return {
            "id": self.id,
            "kind": self.kind,
            "photos": list(self.photos),
            "categories": list(self.categories),
            "score": round(self.score, 4),
            "message": self.message,
            "suggestion": self.suggestion.as_dict() if self.suggestion else None,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: FindingDict) -> Finding:
        """A finding as `as_dict` wrote it (the review's cache)."""
        return cls(
            id=str(data["id"]),
            kind=data["kind"],
            photos=tuple(data["photos"]),
            categories=tuple(data["categories"]),
            score=float(data["score"]),
            message=str(data["message"]),
            suggestion=Suggestion.from_dict(data["suggestion"]) if data["suggestion"] else None,
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class Review:
    findings: tuple[Finding, ...]
    dismissed: int
    model_trained_at: float | None
    stale: bool
    unreviewed: int = 0  # photos without features (unreadable, or not extracted yet)

    def as_dict(self) -> ReviewDict:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        return {
            "findings": [f.as_dict() for f in self.findings],
            "counts": counts,
            "dismissed": self.dismissed,
            "model_trained_at": self.model_trained_at,
            "stale": self.stale,
            "unreviewed": self.unreviewed,
        }

    def for_photo(self, rel: str) -> list[Finding]:
        return [f for f in self.findings if rel in f.photos]

    def get(self, finding_id: str) -> Finding:
        for finding in self.findings:
            if finding.id == finding_id:
                return finding
        raise NotFoundError(
            f"There is no finding {finding_id!r} (the data may have changed): "
            "run the review again to see the current ones."
        )


def make_finding(
    kind: FindingKind,
    photos: Sequence[str],
    categories: Sequence[str],
    score: float,
    message: str,
    suggestion: Suggestion | None,
    details: dict[str, float | str] | None = None,
) -> Finding:
    """A finding whose id is stable while the same photos and categories are involved."""
    key = "\n".join([kind, *sorted(photos), "|", *sorted(categories)])
    return Finding(
        id=hashlib.sha256(key.encode("utf-8")).hexdigest()[:10],
        kind=kind,
        photos=tuple(photos),
        categories=tuple(categories),
        score=float(min(1.0, max(0.0, score))),
        message=message,
        suggestion=suggestion,
        details=details or {},
    )


# ----- the review ---------------------------------------------------------------------------
def review_project(
    project: Project, extract: bool = True, hashes: dict[str, str] | None = None
) -> Review:
    """The current findings, most important first, without those the user dismissed.

    Cached in .duetml/cache/review.json and recomputed only when the photos, the model or
    the dismissals change. ``extract=False`` skips photos whose features are not cached yet
    (e.g. test photos before the first `eval`) instead of computing them.
    """
    from duetml.training import load_model

    records = project.images("train") + project.images("test")
    # The caller's hashes were taken a moment ago: a photo added since (the page polls status
    # while uploads land) is hashed now instead of failing the whole review.
    missing = [r for r in records if hashes is None or r.rel not in hashes]
    hashes = {**(hashes or {}), **(project.hashes(missing) if missing else {})}
    model: TrainedModel | None
    try:
        model = load_model(project)
    except (NoModelError, ModelFileError):
        model = None
    dismissed = _read_dismissed(project)
    trained_at = float(model.meta.get("trained_at", 0.0)) if model else None
    stale = model is not None and model.meta.get("fingerprint") != _train_fingerprint(
        records, hashes
    )
    key = _cache_key(records, hashes, trained_at, dismissed, extract)
    cached = _read_cache(project, key)
    if cached is None:
        from threadpoolctl import threadpool_limits

        # Mostly small per-category matrices: one BLAS thread avoids the thread start-up
        # and spinning that made them several times slower on a busy 2-core machine.
        with threadpool_limits(limits=1, user_api="blas"):
            findings, unreviewed, hidden = _compute(
                project, records, hashes, model, dismissed, extract
            )
        _write_cache(project, key, findings, unreviewed, hidden)
    else:
        findings, unreviewed, hidden = cached
    hidden_ids = set(dismissed["ids"])
    shown = tuple(f for f in findings if f.id not in hidden_ids)
    hidden += len(findings) - len(shown)
    return Review(shown, hidden, trained_at, stale, unreviewed)


def _compute(
    project: Project,
    records: list[ImageRecord],
    hashes: dict[str, str],
    model: TrainedModel | None,
    dismissed: dict[str, Any],
    extract: bool,
) -> tuple[list[Finding], int, int]:
    """(findings, photos without features, findings hidden by photo dismissals)."""
    import numpy as np

    from duetml.features import fill_cache
    from duetml.training import feature_cache

    findings: list[Finding] = []
    train = [r for r in records if r.split == "train"]
    findings += _small_categories(project, train)
    if not records:
        return findings, 0, 0
    cache = feature_cache(project)
    if extract:
        fill_cache(cache, [(hashes[r.rel], r.path) for r in records], project.feature_backbone)
    usable = [r for r in records if hashes[r.rel] in cache]
    unreviewed = len(records) - len(usable)
    if len(usable) < 2:
        return findings, unreviewed, 0
    x = cache.matrix([hashes[r.rel] for r in usable]).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    data = _Data(usable, x, hashes, dismissed)
    off_domain = _off_domain(data)
    flagged_mislabel: set[str] = set()
    if model is not None:
        found = _mislabels(data, model, set(off_domain))
        flagged_mislabel = {p for f in found for p in f.photos}
        findings += found
        findings += _overlaps(data, model)
    findings += _duplicates(data, model)
    findings += _outliers(data, off_domain, flagged_mislabel)
    findings += _mixed(data)
    findings.sort(key=lambda f: (-f.score, f.kind, f.photos, f.categories))
    return findings, unreviewed, len(data.hidden_groups)


@dataclass
class _Data:
    records: list[ImageRecord]
    x: np.ndarray  # unit-norm float32 features, one row per record
    hashes: dict[str, str]
    dismissed: dict[str, Any]
    _neighbours: tuple[np.ndarray, np.ndarray] | None = None
    hidden_groups: set[tuple[str, ...]] = field(default_factory=set)

    def photo_dismissed(self, kind: str, rel: str, group: tuple[str, ...]) -> bool:
        """Whether the user said "this one is right" about this photo for this kind."""
        if self.hashes.get(rel, "") in self.dismissed["photos"].get(kind, ()):
            self.hidden_groups.add((kind, *group))
            return True
        return False

    def neighbours(self) -> tuple[np.ndarray, np.ndarray]:
        """(cosine similarities, indices) of every photo's nearest photos, itself excluded,
        best first. The search runs on a PCA projection to SEARCH_DIM values (ten times less
        work than on the full vectors; copies stay each other's neighbours), in chunks of
        bounded memory; the similarities of the neighbours found are then exact."""
        if self._neighbours is None:
            import numpy as np
            from sklearn import config_context
            from sklearn.neighbors import NearestNeighbors

            n = len(self.x)
            k = min(NEIGHBOURS + 1, n)
            space = _projection(self.x)
            search = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(space)
            with config_context(working_memory=64):  # MB per chunk: bounded at any size
                _, indices = search.kneighbors(space)
            # Drop each photo itself (exact copies may sort either way, so by index).
            rows_idx = np.full((n, k - 1), -1, dtype=np.int64)
            for i in range(n):
                others = indices[i][indices[i] != i][: k - 1]
                rows_idx[i, : len(others)] = others
            rows_sim = np.full((n, k - 1), -1.0)
            for start in range(0, n, 512):  # 512 x 10 neighbours x 1,280 floats: 26 MB
                block = slice(start, start + 512)
                found = rows_idx[block]
                exact = np.einsum("nd,nkd->nk", self.x[block], self.x[np.maximum(found, 0)])
                rows_sim[block] = np.where(found >= 0, exact, -1.0)
            order = np.argsort(-rows_sim, axis=1)
            rows_sim = np.take_along_axis(rows_sim, order, axis=1)
            rows_idx = np.take_along_axis(rows_idx, order, axis=1)
            self._neighbours = (rows_sim, rows_idx)
        return self._neighbours


SEARCH_DIM = 128


def _projection(x: np.ndarray) -> np.ndarray:
    """The features projected on their SEARCH_DIM main directions (PCA fitted on an even
    sample of at most 2,000 photos), as float32; unchanged when they are already small."""
    import numpy as np

    n, dim = x.shape
    if dim <= SEARCH_DIM or n <= SEARCH_DIM:
        return x
    from sklearn.utils.extmath import randomized_svd

    sample = x[np.linspace(0, n - 1, min(n, 2000)).astype(np.int64)]
    mean = sample.mean(0)
    _, _, directions = randomized_svd(sample - mean, SEARCH_DIM, n_iter=2, random_state=0)
    basis = directions.T.astype(np.float32)
    projected = np.empty((n, SEARCH_DIM), dtype=np.float32)
    for start in range(0, n, 4096):
        block = slice(start, start + 4096)
        projected[block] = (x[block] - mean.astype(np.float32)) @ basis
    return projected


# ----- photo-level findings -------------------------------------------------------------------
def _mislabels(data: _Data, model: TrainedModel, off_domain: set[str]) -> list[Finding]:
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
        what = _photos_text(n)
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
                    label=f"Move {_photos_text(n)} to {suggested}",
                ),
                {
                    "confidence": round(confidence, 4),
                    "suggested": suggested,
                    "given": given_category,
                },
            )
        )
    return findings


def _own_probabilities(model: TrainedModel) -> dict[str, float]:
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


def _duplicates(data: _Data, model: TrainedModel | None) -> list[Finding]:
    """Near-identical features: re-encoded, resized or slightly cropped copies."""
    import numpy as np

    agreement = _own_probabilities(model) if model is not None else {}

    similarities, indices = data.neighbours()
    n = len(data.records)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    best_pair: dict[int, float] = {}
    thumbnails: dict[int, np.ndarray | None] = {}
    for i, j in zip(*np.nonzero(similarities >= DUPLICATE_CANDIDATE), strict=True):
        other = int(indices[i, j])
        similarity = float(similarities[i, j])
        if similarity < DUPLICATE_SIMILARITY and not _same_picture(data, i, other, thumbnails):
            continue
        a, b = root(int(i)), root(other)
        if a != b:
            parent[a] = b
        for member in (int(i), other):
            best_pair[member] = max(best_pair.get(member, 0.0), similarity)
    groups: dict[int, list[int]] = {}
    for i in best_pair:
        groups.setdefault(root(i), []).append(i)
    findings = []
    for members in groups.values():
        if len(members) < 2:
            continue
        recs = [data.records[i] for i in members]
        similarity = min(best_pair[i] for i in members)
        tests = [r for r in recs if r.split == "test"]
        trains = [r for r in recs if r.split == "train"]
        if tests and trains:
            cats = sorted({r.category for r in recs}, key=str.lower)
            photos = [r.rel for r in tests] + [r.rel for r in trains]
            findings.append(
                make_finding(
                    "leak",
                    photos,
                    cats,
                    0.95,
                    f"{_photos_text(len(tests)).capitalize()} in the test set "
                    f"{'is a copy' if len(tests) == 1 else 'are copies'} of training "
                    "photos: this makes the test accuracy look better than it is.",
                    Suggestion(
                        "remove",
                        tuple(r.rel for r in tests),
                        label=f"Remove {_photos_text(len(tests))} from the test set",
                    ),
                    {"similarity": round(similarity, 4)},
                )
            )
        # Copies inside one split (train with train, test with test) are a separate matter.
        for split_records in (trains, tests):
            if len(split_records) >= 2:
                findings.append(_duplicate_finding(split_records, similarity, agreement))
    return findings


def _same_picture(data: _Data, i: int, j: int, thumbnails: dict[int, np.ndarray | None]) -> bool:
    """Whether two photos with close features are the same picture: their small grey
    thumbnails match (also mirrored). Resizing and re-encoding move the features of a copy
    more than a 5% crop does (measured: down to 0.86), while distinct photos of one object
    reach 0.9 too; the pixels tell them apart. Only these few candidates are decoded."""

    for k in (i, j):
        if k not in thumbnails:
            thumbnails[k] = _thumbnail(data.records[k].path)
    a, b = thumbnails[i], thumbnails[j]
    if a is None or b is None:
        return False
    mirrored = b.reshape(THUMBNAIL_SIZE, THUMBNAIL_SIZE)[:, ::-1].ravel()
    return max(float(a @ b), float(a @ mirrored)) >= THUMBNAIL_MATCH


THUMBNAIL_SIZE = 16


def _thumbnail(path: Path) -> np.ndarray | None:
    """A unit-norm, zero-mean 16x16 grey thumbnail (JPEG draft mode decodes at 1/8 size)."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("L", (THUMBNAIL_SIZE * 4, THUMBNAIL_SIZE * 4))
            small = image.convert("L").resize(
                (THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BILINEAR
            )
    except (OSError, ValueError):
        return None
    vector = np.asarray(small, dtype=np.float64).ravel()
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 1e-9 else None


def _duplicate_finding(
    recs: list[ImageRecord], similarity: float, agreement: dict[str, float]
) -> Finding:
    cats = sorted({r.category for r in recs}, key=str.lower)
    keep = _copy_to_keep(recs, agreement)
    others = [r.rel for r in recs if r.rel != keep.rel]
    across = len(cats) > 1
    if across:
        message = (
            f"The same photo is filed in {len(cats)} categories "
            f"({', '.join(repr(c) for c in cats)}): a copy teaches the model "
            "two answers for one picture."
        )
    else:
        message = (
            f"{len(recs)} photos in {cats[0]!r} are copies of one picture: "
            "copies count twice and make cross-validation look better than it is."
        )
    return make_finding(
        "near_duplicate",
        [keep.rel, *others],
        cats,
        0.9 if across else 0.4,
        message,
        Suggestion(
            "remove",
            tuple(others),
            label=f"Remove {_photos_text(len(others), 'copy', 'copies')}, "
            f"keep the one in {keep.category}",
        ),
        {
            "similarity": round(similarity, 4),
            "keep": keep.rel,
            "across_categories": "yes" if across else "no",
        },
    )


def _copy_to_keep(records: list[ImageRecord], agreement: dict[str, float]) -> ImageRecord:
    """The copy to keep: the one whose category the model agrees with most (across
    categories), then the one with the most pixels (the least resized or cropped), then the
    oldest file (the original, not the re-encoded copy)."""
    from PIL import Image

    def key(record: ImageRecord) -> tuple[float, int, float]:
        try:
            with Image.open(record.path) as image:  # reads the header only
                area = image.width * image.height
            age = -record.path.stat().st_mtime
        except OSError:
            area, age = 0, 0.0
        return (round(agreement.get(record.rel, 0.0), 1), area, age)

    return max(records, key=key)


def _robust_z(values: np.ndarray) -> np.ndarray:
    import numpy as np

    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    spread = max(mad, 1e-3)
    return cast("np.ndarray", (values - median) / spread)


def _off_domain(data: _Data) -> dict[str, float]:
    """rel -> score of training photos unlike every category: a low cosine similarity to the
    nearest category centre (its own centre without the photo itself), both for the whole
    project and for its own category. Centres are barely moved by a few strange photos, so
    a handful of similar off-domain photos (five churches among t-shirts) do not hide each
    other the way nearest neighbours would. Measured (bench/bench_review.py): in a narrow
    project (clothing) Caltech photos stand out on both scores; in a broad one (Caltech)
    a few percent of honest photos do too, hence the cap on how many are raised."""
    import numpy as np

    train_rows = np.array([i for i, r in enumerate(data.records) if r.split == "train"])
    if len(train_rows) < 10:
        return {}
    names = sorted({data.records[i].category for i in train_rows})
    column = {c: j for j, c in enumerate(names)}
    labels = np.array([column[data.records[i].category] for i in train_rows])
    sums = np.zeros((len(names), data.x.shape[1]), dtype=np.float64)
    for j in range(len(names)):
        sums[j] = data.x[train_rows[labels == j]].sum(0, dtype=np.float64)
    counts = np.bincount(labels, minlength=len(names))
    sum_norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    best = np.empty(len(train_rows))
    own_sim = np.empty(len(train_rows))
    for start in range(0, len(train_rows), 4096):
        rows = slice(start, start + 4096)
        dots = data.x[train_rows[rows]] @ sums.T.astype(np.float32)
        sims = dots / sum_norms[None, :]
        own = labels[rows]
        own_dot = dots[np.arange(len(own)), own]
        leave_one_out = np.sqrt(np.maximum(sum_norms[own] ** 2 - 2 * own_dot + 1.0, 1e-12))
        own_sim[rows] = np.where(counts[own] > 1, (own_dot - 1.0) / leave_one_out, -1.0)
        sims[np.arange(len(own)), own] = own_sim[rows]
        best[rows] = sims.max(1)
    z_project = _robust_z(-best)
    z_category = np.zeros(len(train_rows))
    for j in range(len(names)):
        members = labels == j
        if members.sum() >= 5:
            z_category[members] = _robust_z(-own_sim[members])
    candidates = np.flatnonzero((z_project >= OFF_DOMAIN_Z) & (z_category >= OFF_DOMAIN_Z_CATEGORY))
    cap = max(OFF_DOMAIN_MIN_CAP, int(OFF_DOMAIN_MAX_SHARE * len(train_rows)))
    ranked = sorted(candidates, key=lambda i: -(z_project[i] + z_category[i]))[:cap]
    return {data.records[train_rows[i]].rel: float(z_project[i]) for i in ranked}


def _outliers(data: _Data, off_domain_z: dict[str, float], skip: set[str]) -> list[Finding]:
    """Off-domain photos (already scored), and photos far from their nearest neighbours in
    their own category (unusual for it). Mislabelled photos are reported as such instead."""
    import numpy as np

    train_rows = [i for i, r in enumerate(data.records) if r.split == "train"]
    off_domain: dict[str, list[tuple[str, float]]] = {}
    unusual: dict[str, list[tuple[str, float]]] = {}
    for rel, z in off_domain_z.items():
        if rel not in skip:
            off_domain.setdefault(rel.split("/")[1], []).append((rel, z))
    flagged = set(off_domain_z)
    by_category: dict[str, list[int]] = {}
    for i in train_rows:
        by_category.setdefault(data.records[i].category, []).append(i)
    for category, rows in by_category.items():
        if len(rows) < 8:
            continue
        rows = rows[:MAX_GROUP]
        xc = data.x[rows]
        gram = xc @ xc.T
        np.fill_diagonal(gram, -np.inf)
        kk = min(OUTLIER_NEIGHBOURS, len(rows) - 1)
        top = -np.partition(-gram, kk - 1, axis=1)[:, :kk]
        z_in = _robust_z(1.0 - top.mean(1))
        for row, z in zip(rows, z_in, strict=True):
            rel = data.records[row].rel
            if z >= OUTLIER_Z and rel not in skip and rel not in flagged:
                unusual.setdefault(category, []).append((rel, float(z)))
    findings = []
    for subtype, groups in (("off_domain", off_domain), ("unusual", unusual)):
        for category, items in groups.items():
            items = [
                (rel, z)
                for rel, z in items
                if not data.photo_dismissed("outlier", rel, (subtype, category))
            ]
            if not items:
                continue
            items.sort(key=lambda item: -item[1])
            n = len(items)
            if subtype == "off_domain":
                message = (
                    f"{_photos_text(n).capitalize()} in {category!r} "
                    f"{'is' if n == 1 else 'are'} unlike every category of the project: "
                    "they may not belong to this task at all."
                )
                score = 0.6 + min(items[0][1] / 100.0, 0.2)
            else:
                message = (
                    f"{_photos_text(n).capitalize()} in {category!r} "
                    f"{'is' if n == 1 else 'are'} unlike the rest of the category: "
                    "check that they show what the category means."
                )
                score = 0.45 + min(items[0][1] / 100.0, 0.1)
            photos = tuple(rel for rel, _ in items)
            findings.append(
                make_finding(
                    "outlier",
                    photos,
                    (category,),
                    score,
                    message,
                    Suggestion("remove", photos, label=f"Remove {_photos_text(n)}"),
                    {"subtype": subtype, "z": round(items[0][1], 2)},
                )
            )
    return findings


# ----- category-level findings ----------------------------------------------------------------
def _overlaps(data: _Data, model: TrainedModel) -> list[Finding]:
    """Pairs of categories the out-of-fold predictions confuse in both directions."""
    import numpy as np

    probs = model.extras.get("oof_probabilities")
    rels = model.extras.get("oof_rels")
    if probs is None or rels is None:
        return []
    categories = model.categories
    k = len(categories)
    index = {c: i for i, c in enumerate(categories)}
    present = {r.rel for r in data.records}
    confusion = np.zeros((k, k), dtype=np.int64)
    for rel, p in zip(rels, probs, strict=True):
        rel = str(rel)
        if rel in present:
            confusion[index[rel.split("/")[1]], int(np.argmax(p))] += 1
    sizes = confusion.sum(1)
    findings = []
    for a in range(k):
        for b in range(a + 1, k):
            ab, ba = int(confusion[a, b]), int(confusion[b, a])
            if min(ab, ba) < OVERLAP_MIN_COUNT or not sizes[a] or not sizes[b]:
                continue
            share_ab, share_ba = ab / sizes[a], ba / sizes[b]
            if min(share_ab, share_ba) < OVERLAP_MIN_SHARE:
                continue
            big, small = (a, b) if sizes[a] >= sizes[b] else (b, a)
            ca, cb = categories[a], categories[b]
            findings.append(
                make_finding(
                    "overlap",
                    (),
                    (ca, cb),
                    0.7 + 0.2 * min(share_ab, share_ba),
                    f"The model confuses {ca!r} and {cb!r} both ways ({ab} of {sizes[a]} "
                    f"and {ba} of {sizes[b]} photos): the two may overlap by definition; "
                    "merge them or make each more distinct.",
                    Suggestion(
                        "merge",
                        to=categories[big],
                        categories=(categories[small],),
                        label=f"Merge {categories[small]} into {categories[big]}",
                    ),
                    {"share_a_to_b": round(share_ab, 4), "share_b_to_a": round(share_ba, 4)},
                )
            )
    return findings


def _mixed(data: _Data) -> list[Finding]:
    """Categories whose photos fall into two clearly separate groups: the graph of each
    photo's nearest neighbours in its category nearly falls apart in two (a small second
    eigenvalue of its normalised Laplacian; the split is the sweep cut of the Fiedler
    vector with the lowest conductance). Measured on Caltech: two classes filed as one give
    0.015-0.02, a single class 0.04-0.3; 2-means with a silhouette did not separate them."""
    import numpy as np

    by_category: dict[str, list[int]] = {}
    for i, r in enumerate(data.records):
        if r.split == "train":
            by_category.setdefault(r.category, []).append(i)
    findings = []
    for category, rows in by_category.items():
        if len(rows) < MIXED_MIN_PHOTOS:
            continue
        if len(rows) > MIXED_MAX_PHOTOS:  # an even sample keeps this O(sample^2)
            rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, MIXED_MAX_PHOTOS)]
        connectivity, side = _two_groups(data.x[rows].astype(np.float64))
        if connectivity >= MIXED_CONNECTIVITY:
            continue
        smaller = side if side.sum() <= (~side).sum() else ~side
        photos = tuple(data.records[rows[i]].rel for i in np.flatnonzero(smaller))
        rest = len(rows) - len(photos)
        findings.append(
            make_finding(
                "mixed",
                photos,
                (category,),
                0.5 + 0.3 * (1.0 - connectivity / MIXED_CONNECTIVITY),
                f"The photos of {category!r} fall into two separate groups ({rest} and "
                f"{len(photos)} photos): it may mix two different things.",
                Suggestion(
                    "split",
                    photos,
                    to=f"{category}-2",
                    categories=(category,),
                    label=f"Split {_photos_text(len(photos))} into a new category",
                ),
                {"connectivity": round(float(connectivity), 4)},
            )
        )
    return findings


def _two_groups(x: np.ndarray, neighbours: int = 7) -> tuple[float, np.ndarray]:
    """(algebraic connectivity of the normalised k-NN graph, the better side of its cut)."""
    import numpy as np

    n = len(x)
    k = min(neighbours, n - 1)
    gram = x @ x.T
    np.fill_diagonal(gram, -np.inf)
    nearest = np.argpartition(-gram, k - 1, axis=1)[:, :k]
    adjacency = np.zeros((n, n))
    adjacency[np.repeat(np.arange(n), k), nearest.ravel()] = 1.0
    adjacency = np.maximum(adjacency, adjacency.T)
    degree = adjacency.sum(1)
    scale = 1.0 / np.sqrt(degree)
    laplacian = np.eye(n) - scale[:, None] * adjacency * scale[None, :]
    values, vectors = np.linalg.eigh(laplacian)
    order = np.argsort(vectors[:, 1] * scale)
    # Sweep cut: the prefix of the Fiedler order with the lowest conductance, each side
    # holding at least MIXED_MIN_SHARE of the photos.
    smallest = max(4, int(np.ceil(MIXED_MIN_SHARE * n)))
    inside = np.zeros(n, dtype=bool)
    between, volume, total = 0.0, 0.0, float(degree.sum())
    best = (np.inf, 0)
    for count, vertex in enumerate(order[:-1], start=1):
        between += degree[vertex] - 2.0 * adjacency[vertex, inside].sum()
        volume += degree[vertex]
        inside[vertex] = True
        if smallest <= count <= n - smallest:
            conductance = between / max(min(volume, total - volume), 1e-12)
            best = min(best, (conductance, count))
    side = np.zeros(n, dtype=bool)
    side[order[: best[1]]] = True
    if best[1] == 0:
        return 1.0, side
    return float(values[1]), side


def _small_categories(project: Project, train: list[ImageRecord]) -> list[Finding]:
    """Empty, tiny and imbalanced categories (all of them, not only the extreme pair)."""
    import statistics

    counts = {name: 0 for name in project.category_names("train")}
    for record in train:
        counts[record.category] = counts.get(record.category, 0) + 1
    nonzero = [c for c in counts.values() if c]
    if not counts:
        return []
    median = statistics.median(nonzero) if nonzero else 0
    findings = []
    for name, count in counts.items():
        if count == 0:
            message = f"{name!r} has no photos, so the model ignores it: add photos or remove it."
            score, reason = 0.7, "empty"
        elif count < TINY_CATEGORY:
            message = (
                f"{name!r} has only {count} photo(s): the model can barely learn it; "
                f"add at least {TINY_CATEGORY}."
            )
            score, reason = 0.55, "tiny"
        elif len(nonzero) >= 2 and count * IMBALANCE_RATIO <= median:
            message = (
                f"{name!r} has {count} photos while a typical category has {median:g}: "
                "the model will rarely predict it; add photos to it."
            )
            score, reason = 0.3, "imbalanced"
        else:
            continue
        findings.append(
            make_finding(
                "small",
                (),
                (name,),
                score,
                message,
                Suggestion("add_photos", categories=(name,), label=f"Add photos to {name}"),
                {"count": float(count), "median": float(median), "reason": reason},
            )
        )
    return findings


def _photos_text(n: int, one: str = "photo", many: str = "photos") -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"


# ----- acting on findings ---------------------------------------------------------------------
def apply_finding(project: Project, finding_id: str, extract: bool = True) -> str:
    """Apply a finding's suggestion as one undoable operation; "keep" dismisses it."""
    finding = review_project(project, extract=extract).get(finding_id)
    if finding.suggestion is None or finding.suggestion.action == "keep":
        dismiss_findings(project, [finding_id], extract=extract)
        return "Kept as it is; this finding will not be raised again."
    return apply_suggestion(project, finding.suggestion, "review", finding_id=finding_id)


def apply_suggestion(
    project: Project, suggestion: Suggestion, source: str, finding_id: str | None = None
) -> str:
    """Validate a suggestion against the project and apply it as ONE undoable operation,
    logged with ``source`` ("review" or "proposal"). Returns a sentence for the user."""
    action = suggestion.action
    photos = list(dict.fromkeys(suggestion.photos))
    for rel in photos:
        project.image(rel)  # raises one sentence for a stale or foreign photo id
    known = set(project.category_names("train"))
    for name in suggestion.categories:
        if validate_category_name(name) not in known:
            raise NotFoundError(f"There is no category {name!r} any more: review the data again.")
    if action in ("move", "split"):
        if not photos:
            raise DuetmlError("Name the photos to move.")
        to = suggestion.to or (f"{suggestion.categories[0]}-2" if suggestion.categories else None)
        if not to:
            raise DuetmlError("Name the category to move the photos to.")
        moved = project.move_images(photos, validate_category_name(to))
        result = f"Moved {_photos_text(len(moved))} to {to!r}."
    elif action == "remove":
        if not photos:
            raise DuetmlError("Name the photos to remove.")
        count = project.remove_images(photos)
        result = f"Removed {_photos_text(count)} (they are in the trash; undo brings them back)."
    elif action == "merge":
        if not suggestion.to or not suggestion.categories:
            raise DuetmlError("A merge needs the categories to merge and the one they become.")
        count = project.merge_categories(suggestion.categories, suggestion.to)
        result = (
            f"Merged {', '.join(repr(c) for c in suggestion.categories)} into "
            f"{suggestion.to!r} ({_photos_text(count)} moved)."
        )
    elif action == "rename":
        if not suggestion.to or len(suggestion.categories) != 1:
            raise DuetmlError("A rename needs one category and its new name.")
        new = project.rename_category(suggestion.categories[0], suggestion.to)
        result = f"Renamed {suggestion.categories[0]!r} to {new!r}."
    elif action == "add_category":
        if not suggestion.to:
            raise DuetmlError("Name the category to add.")
        result = f"Added category {project.add_category(suggestion.to)!r}."
    elif action == "add_photos":
        names = ", ".join(repr(c) for c in suggestion.categories) or "the category"
        raise DuetmlError(
            f"Adding photos needs you: add more photos to {names} "
            "(drag them onto the page or use `duetml add`).",
            web=f"Adding photos needs you: drop more photos on {names}, or use its "
            "Add photos… button.",
        )
    elif action == "keep":
        result = "Kept as it is."
    else:
        raise DuetmlError(f"Unknown action {action!r}: use one of {', '.join(ACTIONS)}.")
    project.log.record(
        "apply_suggestion",
        origin=source,
        action=action,
        label=suggestion.label,
        finding=finding_id,
        photos=photos[:50],
        categories=list(suggestion.categories),
        to=suggestion.to,
    )
    return result


PHOTO_KINDS = ("mislabel", "outlier")  # dismissed per photo: "this one is right"


def dismiss_findings(project: Project, ids: Sequence[str], extract: bool = True) -> int:
    """Hide findings for good (remembered in .duetml/); returns how many were newly hidden."""
    review = review_project(project, extract=extract)
    hashes = project.hashes(project.images("train") + project.images("test"))
    busy = "Another duetml is dismissing findings of this project: try again in a moment."
    with locks.hold(project.state_dir / "review.lock", 15.0, busy):
        state = _read_dismissed(project)
        count = 0
        for finding_id in dict.fromkeys(ids):
            if finding_id in state["ids"]:
                continue
            finding = review.get(finding_id)
            state["ids"].append(finding_id)
            if finding.kind in PHOTO_KINDS:
                keys = state["photos"].setdefault(finding.kind, [])
                keys += [hashes[p] for p in finding.photos if p in hashes]
            count += 1
        atomic.write_text(_dismissed_path(project), json.dumps(state, indent=1))
    project.log.record("dismiss_findings", findings=list(ids))
    return count


def _dismissed_path(project: Project) -> Path:
    return project.state_dir / DISMISSED_FILE


def _read_dismissed(project: Project) -> dict[str, Any]:
    try:
        state = json.loads(_dismissed_path(project).read_text("utf-8"))
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    ids = state.get("ids")
    photos = state.get("photos")
    return {
        "ids": [str(i) for i in ids] if isinstance(ids, list) else [],
        "photos": {
            str(k): [str(h) for h in v]
            for k, v in (photos.items() if isinstance(photos, dict) else [])
            if isinstance(v, list)
        },
    }


# ----- caching --------------------------------------------------------------------------------
def _train_fingerprint(records: list[ImageRecord], hashes: dict[str, str]) -> str:
    from duetml.project import fingerprint_of

    return fingerprint_of([r for r in records if r.split == "train"], hashes)


def _cache_key(
    records: list[ImageRecord],
    hashes: dict[str, str],
    trained_at: float | None,
    dismissed: dict[str, Any],
    extract: bool,
) -> str:
    digest = hashlib.sha256()
    digest.update(f"{REVIEW_VERSION}|{_thresholds()}|{trained_at}|{extract}|".encode())
    digest.update(json.dumps(dismissed["photos"], sort_keys=True).encode())
    for record in sorted(records, key=lambda r: r.rel):
        digest.update(f"{record.rel}\t{hashes[record.rel]}\n".encode())
    return digest.hexdigest()[:32]


def _thresholds() -> str:
    """The tuning constants, so a cached review made with other thresholds is not reused."""
    return json.dumps(
        [
            MISLABEL_MIN_CONFIDENCE,
            MISLABEL_CLEAR,
            MISLABEL_OVER_OFF_DOMAIN,
            MISLABEL_MAX_GIVEN,
            DUPLICATE_SIMILARITY,
            DUPLICATE_CANDIDATE,
            THUMBNAIL_MATCH,
            NEIGHBOURS,
            SEARCH_DIM,
            OUTLIER_NEIGHBOURS,
            OFF_DOMAIN_Z,
            OFF_DOMAIN_Z_CATEGORY,
            OFF_DOMAIN_MAX_SHARE,
            OFF_DOMAIN_MIN_CAP,
            OUTLIER_Z,
            MIXED_CONNECTIVITY,
            MIXED_MAX_PHOTOS,
            MIXED_MIN_PHOTOS,
            MIXED_MIN_SHARE,
            OVERLAP_MIN_SHARE,
            OVERLAP_MIN_COUNT,
            TINY_CATEGORY,
            IMBALANCE_RATIO,
            MAX_GROUP,
        ]
    )


def _read_cache(project: Project, key: str) -> tuple[list[Finding], int, int] | None:
    try:
        data = json.loads((project.state_dir / CACHE_FILE).read_text("utf-8"))
        if data.get("key") != key:
            return None
        findings = [Finding.from_dict(f) for f in data["findings"]]
        return findings, int(data["unreviewed"]), int(data["hidden"])
    except (OSError, ValueError, KeyError, TypeError, DuetmlError):
        return None


def _write_cache(
    project: Project, key: str, findings: list[Finding], unreviewed: int, hidden: int
) -> None:
    data = {
        "key": key,
        "findings": [f.as_dict() for f in findings],
        "unreviewed": unreviewed,
        "hidden": hidden,
    }
    try:
        atomic.write_text(project.state_dir / CACHE_FILE, json.dumps(data))
    except OSError:
        pass  # only a cache


def summary(review: Review) -> str:
    """One line for `status`: how many findings of which kind."""
    if not review.findings:
        return "no findings"
    counts: dict[str, int] = {}
    for finding in review.findings:
        counts[finding.kind] = counts.get(finding.kind, 0) + 1
    parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items())
    n = len(review.findings)
    return f"{n} finding{'s' if n != 1 else ''} ({parts})"


__all__ = [
    "Finding",
    "FindingKind",
    "Review",
    "Suggestion",
    "apply_finding",
    "apply_suggestion",
    "dismiss_findings",
    "review_project",
    "summary",
]
