"""The data review: what is wrong with the photos, found from the features we already cache
and one small decode of each photo.

One pass over the cached features, the out-of-fold results of the last training and the
photos' pixel measures (pixels.py) finds

- mislabel (mislabels.py): photos probably filed in the wrong category, one finding each:
  cleanlab's confident learning, kept only for a confident and consistent disagreement;
- outlier (off_topic.py): photos unlike every category of the project, by a margin
  calibrated on the project (about no false alarm in a clean project), one finding each;
- near_duplicate / leak (duplicates.py): exact copies and copies verified on the pixels
  (perceptual hashes of the whole, the centre and the mirror image), within a category,
  across categories, and between training and test; groups are cliques of verified pairs;
- quality (quality.py): dark, overexposed, blurry, nearly blank, odd-sized or odd-shaped
  photos, and grey ones among colour photos, one finding each;
- overlap, mixed, small (categories.py): categories confused both ways (a question about
  their definitions, where photos between the two are left), categories whose photos fall
  into two separate groups, and small, imbalanced or empty categories.

One module per kind of finding, as cleanlab's issue managers are; types.py holds what a
review returns, data.py what the detectors share, fixes.py how findings are acted on and
cache.py the cache. The CLI, the page and the agents all read the same `Review`. Every fix
goes through the Project operations, so it is one undoable, logged operation. Each threshold
is named and explained once, in the module that uses it, with what it was measured on.

Memory stays bounded: neighbours come from scikit-learn's chunked brute-force search, never
an n x n matrix; per-category work is capped (MIXED_MAX_PHOTOS); the pixel measures are a
few hundred bytes per photo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from duetml.errors import ModelFileError, NoModelError
from duetml.review.cache import (
    CACHE_FILE,
    REVIEW_VERSION,
    cache_key,
    read_cache,
    train_fingerprint,
    write_cache,
)
from duetml.review.categories import find_mixed, find_overlaps, small_categories
from duetml.review.data import ReviewData
from duetml.review.duplicates import find_duplicates
from duetml.review.fixes import (
    DISMISSED_FILE,
    PHOTO_KINDS,
    KeptAsIs,
    apply_finding,
    apply_suggestion,
    dismiss_findings,
    dismissals_version,
    hide_kept,
    keep_findings,
    read_dismissed,
)
from duetml.review.mislabels import find_mislabels
from duetml.review.off_topic import find_off_topic, off_topic_scores
from duetml.review.pixels import PixelRecorder, pixel_facts
from duetml.review.quality import find_quality
from duetml.review.types import (
    ACTIONS,
    KINDS,
    Action,
    Finding,
    FindingKind,
    Review,
    Suggestion,
    make_finding,
    suggestion_from,
)

if TYPE_CHECKING:
    from duetml.classifier import TrainedModel
    from duetml.project import ImageRecord, Project


def review_project(
    project: Project, extract: bool = True, hashes: dict[str, str] | None = None
) -> Review:
    """The current findings, most important first, without those the user dismissed.

    Cached in .duetml/cache/review.json and recomputed only when the photos, the model or
    the dismissals change. ``extract=False`` skips photos whose features are not cached yet
    (e.g. test photos before the first `eval`) instead of computing them.
    """
    from duetml.prediction import load_model

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
    dismissed = read_dismissed(project)
    trained_at = float(model.meta.get("trained_at", 0.0)) if model else None
    stale = model is not None and model.meta.get("fingerprint") != train_fingerprint(
        records, hashes
    )
    key = cache_key(records, hashes, trained_at, dismissed, extract)
    cached = read_cache(project, key)
    if cached is None:
        from threadpoolctl import threadpool_limits

        # Mostly small per-category matrices: one BLAS thread avoids the thread start-up
        # and spinning that made them several times slower on a busy 2-core machine.
        with threadpool_limits(limits=1, user_api="blas"):
            findings, unreviewed, hidden = _compute(
                project, records, hashes, model, dismissed, extract
            )
        write_cache(project, key, findings, unreviewed, hidden)
    else:
        findings, unreviewed, hidden = cached
    shown, kept = hide_kept(findings, dismissed, hashes)  # kept as is, whole or per photo
    return Review(tuple(shown), hidden + kept, trained_at, stale, unreviewed)


def _compute(
    project: Project,
    records: list[ImageRecord],
    hashes: dict[str, str],
    model: TrainedModel | None,
    dismissed: KeptAsIs,
    extract: bool,
) -> tuple[list[Finding], int, int]:
    """(findings, photos without features, findings hidden by photo dismissals)."""
    import numpy as np

    from duetml.features import fill_cache
    from duetml.training import feature_cache

    findings: list[Finding] = []
    train = [r for r in records if r.split == "train"]
    findings += small_categories(project, train)
    if not records:
        return findings, 0, 0
    cache = feature_cache(project)
    if extract:
        recorder = PixelRecorder(project.state_dir)
        try:
            fill_cache(
                cache,
                [(hashes[r.rel], r.path) for r in records],
                project.feature_backbone,
                also=recorder,
            )
        finally:
            recorder.save()
    usable = [r for r in records if hashes[r.rel] in cache]
    unreviewed = len(records) - len(usable)
    if len(usable) < 2:
        return findings, unreviewed, 0
    x = cache.matrix([hashes[r.rel] for r in usable]).astype(np.float32)
    norms = np.maximum(np.linalg.norm(x, axis=1), 1e-12)
    x /= norms[:, None]
    data = ReviewData(usable, x, hashes, dismissed, norms=norms, backbone=project.backbone)
    data.pixels = pixel_facts(project.state_dir, [(hashes[r.rel], r.path) for r in usable])
    off_topic = off_topic_scores(data)
    flagged_mislabel: set[str] = set()
    copies = find_duplicates(data, model)
    if model is not None:
        across = frozenset(
            p for f in copies if f.details.get("across_categories") == "yes" for p in f.photos
        )
        overlaps = find_overlaps(data, model, explained=across)
        between = {frozenset(f.categories) for f in overlaps}
        found = find_mislabels(data, model, set(off_topic), between, copies=across)
        flagged_mislabel = {p for f in found for p in f.photos}
        findings += found + overlaps
    findings += copies
    findings += find_off_topic(data, off_topic, flagged_mislabel)
    findings += find_quality(data)
    findings += find_mixed(data)
    findings.sort(key=lambda f: (-f.score, f.kind, f.photos, f.categories))
    return findings, unreviewed, len(data.hidden_groups)


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
    "ACTIONS",
    "CACHE_FILE",
    "DISMISSED_FILE",
    "KINDS",
    "PHOTO_KINDS",
    "REVIEW_VERSION",
    "Action",
    "Finding",
    "KeptAsIs",
    "FindingKind",
    "Review",
    "Suggestion",
    "apply_finding",
    "apply_suggestion",
    "dismiss_findings",
    "dismissals_version",
    "keep_findings",
    "make_finding",
    "suggestion_from",
    "review_project",
    "summary",
]
