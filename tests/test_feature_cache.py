"""The feature cache appends, never rewrites older content, and survives damage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_duetml

from duetml.backbones import get_backbone
from duetml.features import FeatureCache

BACKBONE = get_backbone("efficientnet-lite0")


def _digest(i: int) -> str:
    return f"{i:064x}"


def _fill(cache: FeatureCache, start: int, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + start)
    added = {}
    for i in range(start, start + count):
        added[_digest(i)] = rng.normal(size=BACKBONE.feature_dim).astype(np.float32)
        cache.put(_digest(i), added[_digest(i)])
    return added


def test_adding_five_vectors_writes_kilobytes_and_leaves_older_segments_alone(
    tmp_path: Path,
) -> None:
    cache = FeatureCache(tmp_path, BACKBONE)
    first = _fill(cache, 0, 2000)
    cache.save()
    [bulk] = cache.segments()
    stamp, size = bulk.stat().st_mtime_ns, bulk.stat().st_size
    cache = FeatureCache(tmp_path, BACKBONE)
    more = _fill(cache, 2000, 5)
    cache.save()
    segments = cache.segments()
    new = [s for s in segments if s != bulk]
    assert len(new) == 1 and new[0].stat().st_size < 40_000 < size
    assert bulk.stat().st_mtime_ns == stamp  # the older content was not rewritten
    reloaded = FeatureCache(tmp_path, BACKBONE)
    assert len(reloaded) == 2005 and not reloaded.notices
    for digest, vector in {**first, **more}.items():
        assert np.array_equal(reloaded.get(digest), vector)  # type: ignore[arg-type]


def test_many_small_saves_are_merged_without_losing_a_vector(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, BACKBONE)
    everything = _fill(cache, 0, 300)
    cache.save()
    for round_ in range(FeatureCache.MAX_SEGMENTS + 5):
        everything |= _fill(cache, 1000 + 3 * round_, 3)
        cache.save()
    assert len(cache.segments()) <= FeatureCache.MAX_SEGMENTS
    reloaded = FeatureCache(tmp_path, BACKBONE)
    assert len(reloaded) == len(everything)
    assert all(np.array_equal(reloaded.get(d), v) for d, v in everything.items())  # type: ignore[arg-type]


def test_a_truncated_segment_is_set_aside_with_one_sentence(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, BACKBONE)
    old = _fill(cache, 0, 50)
    cache.save()
    new = _fill(cache, 50, 5)
    cache.save()
    newest = cache.segments()[-1]
    with open(newest, "r+b") as handle:
        handle.truncate(2000)
    damaged = FeatureCache(tmp_path, BACKBONE)
    assert len(damaged) == 50 and all(d not in damaged for d in new)
    assert len(damaged.notices) == 1 and "computed again" in damaged.notices[0]
    # The next save sets the damaged part aside (renamed, not deleted) and appends anew.
    _fill(damaged, 50, 5)
    damaged.save()
    assert newest.with_suffix(".damaged").exists() and not newest.exists()
    healed = FeatureCache(tmp_path, BACKBONE)
    assert len(healed) == 55 and not healed.notices
    assert all(np.array_equal(healed.get(d), v) for d, v in old.items())  # type: ignore[arg-type]


@pytest.mark.slow
def test_status_and_train_survive_a_truncated_cache(trained_demo: Path) -> None:
    segments = sorted((trained_demo / ".duetml" / "cache").glob("features-*.npz"))
    assert segments
    for segment in segments:
        with open(segment, "r+b") as handle:
            handle.truncate(2000)
    status = run_duetml("status", "-p", str(trained_demo), timeout=600)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    train = run_duetml("train", "-p", str(trained_demo), timeout=600)
    assert train.returncode == 0 and "Traceback" not in train.stderr, train.stderr
    assert "was damaged and is set aside" in train.stdout
    assert "Trained on" in train.stdout and "(0 new feature vectors" not in train.stdout
