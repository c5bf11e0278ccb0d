"""The data review on planted problems: precision and recall per kind, and its speed.

    python bench/bench_review.py [--seeds N] [--skip-caltech]

Projects are built from ../shared/data (Caltech-101 subset, demo-clothing), each with planted
problems a new user makes:
- Caltech (5,233 photos, 100 categories): photos moved into a wrong category; re-encoded,
  resized, cropped and PNG copies in another category, in the same category and in the test
  set; two categories merged into one (mixed); a category split in two at random (overlap);
  tiny, imbalanced and empty categories.
- Clothing (100 photos): Caltech photos inside clothing categories (off-domain; three of
  them of one class, like the issue's churches inside t-shirt), shoes filed under hat, copies
  in the test set.

Reference in the same run: the training time of the same project (the review must take a
small fraction of it). Feature vectors are kept between runs in $BENCH_REVIEW_CACHE
(default /tmp/duetml-bench-review) so only the first run extracts them.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from duetml.images import IMAGE_EXTENSIONS
from duetml.project import Project
from duetml.review import Review, review_project
from duetml.settings import default_settings, write_settings
from duetml.training import feature_cache, train_project

DATA = next(
    (p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared").is_dir()),
    Path("../shared/data"),
)
CALTECH = DATA / "caltech101-subset"
CLOTHING = DATA / "demo-clothing"
CACHE = Path(os.environ.get("BENCH_REVIEW_CACHE", "/tmp/duetml-bench-review"))
# Caltech categories that show the same species; pairs among them overlap by nature.
NATURAL_OVERLAPS = {
    frozenset({"cougar_body", "cougar_face"}),
    frozenset({"crocodile", "crocodile_head"}),
    frozenset({"flamingo", "flamingo_head"}),
    frozenset({"Leopards", "wild_cat"}),
}
KINDS = ("mislabel", "outlier", "near_duplicate", "leak", "quality", "overlap", "mixed", "small")


@dataclass
class Truth:
    """What was planted; sets of photo ids, photo pairs or category names."""

    mislabel: set[str] = field(default_factory=set)
    outlier: set[str] = field(default_factory=set)
    near_duplicate: set[tuple[str, str]] = field(default_factory=set)
    leak: set[tuple[str, str]] = field(default_factory=set)
    overlap: set[frozenset[str]] = field(default_factory=set)
    mixed: set[str] = field(default_factory=set)
    small: set[str] = field(default_factory=set)


@dataclass
class Tally:
    found: int = 0  # planted problems the review found
    planted: int = 0
    true_flags: int = 0  # review flags that are planted problems
    flags: int = 0
    natural: int = 0  # flags on problems the data has by nature (not counted as false)

    def add(self, other: Tally) -> None:
        for name in ("found", "planted", "true_flags", "flags", "natural"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def photos_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def place(source: Path, folder: Path) -> str:
    """Copy a photo into a project folder; returns the project id. Caltech names repeat
    across classes (image_0001.jpg), so the class prefixes the name. A copy, never a hard
    link: a write through a link would change the shared data set itself."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{source.parent.name}-{source.name}"
    if target.exists():
        raise FileExistsError(f"{target} exists: the bench never overwrites a photo.")
    shutil.copyfile(source, target)
    return f"{folder.parent.name}/{folder.name}/{target.name}"


def make_copy(source: Path, folder: Path, how: str, tag: str) -> str:
    """A re-encoded, resized, cropped or PNG copy of a photo, as a user's duplicate would be."""
    image = Image.open(source).convert("RGB")
    out = io.BytesIO()
    if how == "reencode":
        image.save(out, "JPEG", quality=50)
        ext = ".jpg"
    elif how == "resize":
        image.resize((max(1, image.width * 6 // 10), max(1, image.height * 6 // 10))).save(
            out, "JPEG", quality=85
        )
        ext = ".jpg"
    elif how == "crop":
        dx, dy = image.width // 20, image.height // 20
        image.crop((dx, dy, image.width - dx, image.height - dy)).save(out, "JPEG", quality=85)
        ext = ".jpg"
    else:
        image.save(out, "PNG")
        ext = ".png"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"copy-{tag}-{source.stem}{ext}"
    target.write_bytes(out.getvalue())
    return f"{folder.parent.name}/{folder.name}/{target.name}"


COPY_KINDS = ("reencode", "resize", "crop", "png")


def build_caltech(root: Path, rng: random.Random) -> Truth:
    truth = Truth()
    names = sorted(p.name for p in CALTECH.iterdir() if p.is_dir())
    photos = {n: photos_of(CALTECH / n) for n in names}
    for files in photos.values():
        rng.shuffle(files)
    families = {c for pair in NATURAL_OVERLAPS for c in pair}
    free = [n for n in names if n not in families]
    rng.shuffle(free)
    mixed_pairs = [(free.pop(), free.pop()) for _ in range(3)]
    split_categories = [free.pop() for _ in range(2)]
    tiny = [free.pop() for _ in range(3)]
    imbalanced = [free.pop() for _ in range(3)]
    absorbed = {b for _, b in mixed_pairs}
    train = root / "train"
    test = root / "test"
    for name in names:
        if name in absorbed:
            continue
        files = photos[name]
        for f in files[:2]:
            place(f, test / name)
        rest = files[2:]
        if name in tiny:
            rest = rest[:3]
        elif name in imbalanced:
            rest = rest[:10]
        if name in split_categories:
            half = len(rest) // 2
            for f in rest[:half]:
                place(f, train / f"{name}_a")
            for f in rest[half:]:
                place(f, train / f"{name}_b")
            truth.overlap.add(frozenset({f"{name}_a", f"{name}_b"}))
            continue
        for f in rest:
            place(f, train / name)
    for a, b in mixed_pairs:
        for f in photos[b][2:]:
            place(f, train / a)
        truth.mixed.add(a)
    (train / "empty_category").mkdir()
    truth.small |= set(tiny) | set(imbalanced) | {"empty_category"}
    # Mislabels: photos moved into a wrong category (never into or out of planted ones).
    plain = [n for n in free if (train / n).is_dir()]
    for _ in range(40):
        source_category, target_category = rng.sample(plain, 2)
        candidates = photos_of(train / source_category)
        if len(candidates) <= 10:
            continue
        photo = rng.choice(candidates)
        if (train / target_category / photo.name).exists():
            continue
        os.replace(photo, train / target_category / photo.name)
        truth.mislabel.add(f"train/{target_category}/{photo.name}")
    # Copies: in another category, in the same category, and in the test set (a leak).
    for i in range(12):
        source_category, target_category = rng.sample(plain, 2)
        original = rng.choice(photos_of(train / source_category))
        original_rel = f"train/{source_category}/{original.name}"
        if original_rel in truth.mislabel:
            continue
        copy = make_copy(original, train / target_category, COPY_KINDS[i % 4], f"x{i}")
        truth.near_duplicate.add((original_rel, copy))
    for i in range(6):
        category = rng.choice(plain)
        original = rng.choice(photos_of(train / category))
        copy = make_copy(original, train / category, COPY_KINDS[i % 4], f"s{i}")
        truth.near_duplicate.add((f"train/{category}/{original.name}", copy))
    for i in range(12):
        category = rng.choice(plain)
        original = rng.choice(photos_of(train / category))
        copy = make_copy(original, test / category, COPY_KINDS[i % 4], f"t{i}")
        truth.leak.add((f"train/{category}/{original.name}", copy))
    return truth


def build_clothing(root: Path, rng: random.Random) -> Truth:
    truth = Truth()
    names = sorted(p.name for p in CLOTHING.iterdir() if p.is_dir())
    train, test = root / "train", root / "test"
    for name in names:
        files = photos_of(CLOTHING / name)
        rng.shuffle(files)
        for f in files[:3]:
            place(f, test / name)
        for f in files[3:]:
            place(f, train / name)
    # Off-domain: random Caltech photos, and three of one class together (the churches).
    caltech = sorted(p for p in CALTECH.iterdir() if p.is_dir())
    one_class = rng.choice(caltech)
    strangers = [rng.choice(photos_of(rng.choice(caltech))) for _ in range(6)]
    strangers += rng.sample(photos_of(one_class), 3)
    targets = ["t-shirt"] * 3 + ["pants"] * 3 + [rng.choice(names)] * 3
    for photo, category in zip(strangers, targets, strict=True):
        truth.outlier.add(place(photo, train / category))
    # Mislabels: three shoes filed under hat.
    for photo in rng.sample(photos_of(train / "shoes"), 3):
        assert not (train / "hat" / photo.name).exists()
        os.replace(photo, train / "hat" / photo.name)
        truth.mislabel.add(f"train/hat/{photo.name}")
    for i in range(2):
        category = rng.choice(names)
        original = rng.choice(photos_of(train / category))
        rel = f"train/{category}/{original.name}"
        if rel in truth.mislabel or rel in truth.outlier:
            continue
        truth.leak.add((rel, make_copy(original, test / category, COPY_KINDS[i], f"t{i}")))
    return truth


def score(review: Review, truth: Truth, photo_count: int) -> dict[str, Tally]:
    tallies = {kind: Tally() for kind in KINDS}
    by_kind = {kind: [f for f in review.findings if f.kind == kind] for kind in KINDS}
    for kind in ("mislabel", "outlier"):
        planted: set[str] = getattr(truth, kind)
        flagged = {p for f in by_kind[kind] for p in f.photos}
        tallies[kind] = Tally(
            len(planted & flagged), len(planted), len(planted & flagged), len(flagged)
        )
    for kind in ("near_duplicate", "leak"):
        pairs: set[tuple[str, str]] = getattr(truth, kind)
        found = {pair for pair in pairs if any(set(pair) <= set(f.photos) for f in by_kind[kind])}
        true_flags = sum(any(set(pair) <= set(f.photos) for pair in pairs) for f in by_kind[kind])
        tallies[kind] = Tally(len(found), len(pairs), true_flags, len(by_kind[kind]))
    # Nothing of poor quality is planted: every quality flag is on a photo as shipped.
    tallies["quality"] = Tally(0, 0, 0, len(by_kind["quality"]))
    overlap_flags = [frozenset(f.categories) for f in by_kind["overlap"]]
    tallies["overlap"] = Tally(
        len(truth.overlap & set(overlap_flags)),
        len(truth.overlap),
        sum(pair in truth.overlap for pair in overlap_flags),
        len(overlap_flags),
        sum(pair in NATURAL_OVERLAPS for pair in overlap_flags),
    )
    for kind in ("mixed", "small"):
        planted_categories: set[str] = getattr(truth, kind)
        flagged_categories = [f.categories[0] for f in by_kind[kind]]
        tallies[kind] = Tally(
            len(planted_categories & set(flagged_categories)),
            len(planted_categories),
            sum(c in planted_categories for c in flagged_categories),
            len(flagged_categories),
        )
    return tallies


def seed_cache(project: Project) -> None:
    cache = feature_cache(project)
    stored = CACHE / cache.path.name
    if stored.is_file():
        cache.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(stored, cache.path)


def keep_cache(project: Project) -> None:
    cache = feature_cache(project)
    if cache.path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(cache.path, CACHE / cache.path.name)


def run(name: str, root: Path, truth: Truth) -> tuple[dict[str, Tally], dict[str, float]]:
    # The photos were placed by hand; make the folder a project in place.
    write_settings(root, default_settings(f"bench: {name}"))
    project = Project.open(root)
    seed_cache(project)
    started = time.perf_counter()
    train_project(project)
    train_seconds = time.perf_counter() - started
    review_project(project)  # extracts the test photos' features once (as `eval` would)
    keep_cache(project)
    (project.state_dir / "cache" / "review.json").unlink(missing_ok=True)
    started = time.perf_counter()
    review = review_project(project)
    review_seconds = time.perf_counter() - started
    started = time.perf_counter()
    review_project(project)
    cached_seconds = time.perf_counter() - started
    photo_count = len(project.images("train")) + len(project.images("test"))
    flagged = {p for f in review.findings if f.photos for p in f.photos}
    timing = {
        "photos": photo_count,
        "train": train_seconds,
        "review": review_seconds,
        "cached": cached_seconds,
        "flagged_share": len(flagged) / photo_count,
        "findings": len(review.findings),
    }
    return score(review, truth, photo_count), timing


def bounded_memory(n: int = 25_000, dim: int = 1280, groups: int = 200) -> str:
    """Peak memory of the review's feature work at ``n`` photos (synthetic clustered
    features: the real extraction of 25,000 photos would take an hour here)."""
    import tracemalloc

    import numpy as np

    from duetml.project import ImageRecord
    from duetml.review.categories import find_mixed
    from duetml.review.data import ReviewData
    from duetml.review.duplicates import find_duplicates
    from duetml.review.off_topic import find_off_topic, off_topic_scores

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(groups, dim)).astype(np.float32)
    labels = rng.integers(0, groups, n)
    x = centres[labels] + rng.normal(scale=1.5, size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    records = [
        ImageRecord(f"train/c{g}/{i}.jpg", "train", f"c{g}", Path(f"/nonexistent/{i}.jpg"))
        for i, g in enumerate(labels)
    ]
    data = ReviewData(records, x, {}, {"ids": [], "photos": {}})
    features_mb = x.nbytes / 1e6
    import sklearn.neighbors  # noqa: F401  -- imports are not the review's memory
    import sklearn.utils.extmath  # noqa: F401

    tracemalloc.start()
    started = time.perf_counter()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # as review.review_project does
        off_topic = off_topic_scores(data)
        find_duplicates(data, None)
        find_off_topic(data, off_topic, set())
        find_mixed(data)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    square = n * n * 8 / 1e6
    return (
        f"{n:,} photos (synthetic features): peak {peak / 1e6:.0f} MB beyond the "
        f"{features_mb:.0f} MB of features (an n x n float64 matrix would be {square:,.0f} MB), "
        f"{seconds:.1f} s"
    )


def ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "  - "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="clothing projects (one per seed)")
    parser.add_argument("--skip-caltech", action="store_true")
    parser.add_argument(
        "--memory", type=int, default=25_000, help="photos for the memory check (0: skip)"
    )
    args = parser.parse_args()
    if not CLOTHING.is_dir() or not CALTECH.is_dir():
        sys.exit(f"The shared data is missing: {DATA} needs caltech101-subset and demo-clothing.")
    totals = {kind: Tally() for kind in KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        runs: list[tuple[str, Iterable[str]]] = []
        for seed in range(args.seeds):
            root = Path(tmp) / f"clothing-{seed}"
            truth = build_clothing(root, random.Random(seed))
            tallies, timing = run("clothing", root, truth)
            for kind in KINDS:
                totals[kind].add(tallies[kind])
            runs.append(
                (
                    f"clothing seed {seed}",
                    [
                        f"{timing['photos']:.0f} photos, {timing['findings']:.0f} findings, "
                        f"{timing['flagged_share']:.1%} of photos flagged",
                    ],
                )
            )
        if not args.skip_caltech:
            root = Path(tmp) / "caltech"
            truth = build_caltech(root, random.Random(101))
            tallies, timing = run("caltech", root, truth)
            for kind in KINDS:
                totals[kind].add(tallies[kind])
            runs.append(
                (
                    "caltech",
                    [
                        f"{timing['photos']:.0f} photos, {timing['findings']:.0f} findings, "
                        f"{timing['flagged_share']:.1%} of photos flagged",
                        f"training {timing['train']:.2f} s (reference), review "
                        f"{timing['review']:.2f} s ({timing['review'] / timing['train']:.2f} of "
                        f"training; target < 2 s), again from its cache {timing['cached']:.3f} s",
                    ],
                )
            )
            per_kind = ", ".join(
                f"{k} {tallies[k].found}/{tallies[k].planted}" for k in KINDS if tallies[k].planted
            )
            runs.append(("caltech found", [per_kind]))
    if args.memory:
        runs.append(("memory", [bounded_memory(args.memory)]))
    for title, lines in runs:
        for line in lines:
            print(f"{title}: {line}")
    print()
    print(f"{'kind':<15} {'planted':>7} {'found':>6} {'recall':>7} {'flags':>6} {'precision':>9}")
    for kind in KINDS:
        t = totals[kind]
        natural = f"  (+{t.natural} natural overlaps)" if t.natural else ""
        precision = ratio(t.true_flags, t.flags - t.natural)
        print(
            f"{kind:<15} {t.planted:>7} {t.found:>6} {ratio(t.found, t.planted):>7} "
            f"{t.flags:>6} {precision:>9}{natural}"
        )


if __name__ == "__main__":
    main()
