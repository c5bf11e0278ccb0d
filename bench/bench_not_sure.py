"""How often duetml says "not sure": on photos of categories a project does not have (it
should, mostly) and on held-out photos of its own categories (it should not, mostly).

    python bench/bench_not_sure.py [--caltech DIR] [--features NPZ] [--per-category N]

1. The demo clothing project (hat, pants, shoes, t-shirt; `duetml demo`, 80 training
   photos): Caltech-101 photos (N per category, 100 categories none of which is clothing)
   through `predict_sources`, the path `duetml predict` takes, against its 20 held-out test
   photos; then every one of the 100 demo photos held out once (5 folds of 80/20, the same
   rule fitted on each fold's training photos).
2. With the Caltech features (NPZ with x and labels, e.g. /tmp/perf/caltech_feats.npz): 20
   of the 100 categories held out of training, and 20% of the other photos; rates on both.
3. The cost at 5,233 photos: fitting the rule beside the classifier's own fit (`train`) on
   the same features in the same run, and the rule at prediction beside `predict_proba`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from duetml import abstention
from duetml.classifier import normalise, train

CALTECH = Path("/work/shared/data/caltech101-subset")
FEATURES = Path("/tmp/perf/caltech_feats.npz")


def fit_and_judge(
    x_train: np.ndarray, labels: list[str], categories: list[str], queries: np.ndarray
) -> list[str | None]:
    """What train_project and predict_sources do, on features: fit, rule, reasons."""
    model, cv, _ = train(x_train, labels, categories, "efficientnet-lite0")
    index = {c: i for i, c in enumerate(categories)}
    y = np.array([index[label] for label in labels])
    fitted = abstention.fit_rule(x_train, y, cv.probabilities if cv else None)
    assert fitted is not None
    rule, reference = fitted
    return abstention.reasons(rule, reference, normalise(queries), model.predict_proba(queries))


def share(reasons: list[str | None]) -> float:
    return float(np.mean([r is not None for r in reasons]))


def demo_part(caltech: Path, per_category: int) -> None:
    from duetml.demo import create_demo_project
    from duetml.prediction import predict_sources
    from duetml.training import project_features, train_project

    with tempfile.TemporaryDirectory() as tmp:
        project = create_demo_project(Path(tmp) / "demo")
        train_project(project)
        foreign = [
            photo
            for folder in sorted(p for p in caltech.iterdir() if p.is_dir())
            for photo in sorted(folder.glob("*.jpg"))[:per_category]
        ]
        own = [r.path for r in project.images("test")]
        started = time.perf_counter()
        on_foreign = predict_sources(project, foreign, [str(p) for p in foreign])
        on_own = predict_sources(project, own, [str(p) for p in own])
        seconds = time.perf_counter() - started
        print(
            f"demo clothing project, trained on 80 photos: not sure on "
            f"{share([p.reason for p in on_foreign]):.1%} of {len(foreign)} Caltech photos "
            f"(100 categories, none clothing), on "
            f"{share([p.reason for p in on_own]):.1%} of its {len(own)} held-out test photos "
            f"({seconds:.1f} s for both, extraction included)"
        )
        unlike = sum(p.reason == abstention.UNLIKE for p in on_foreign)
        print(
            f"  reasons on Caltech: {unlike} unlike every category, "
            f"{sum(p.reason == abstention.TOO_CLOSE for p in on_foreign)} too close to call"
        )
        # Every demo photo held out once: 5 folds, each with 20 of the 25 per category.
        records = project.images("train") + project.images("test")
        x, usable, _, _ = project_features(project, records)
        labels = np.array([r.category for r in usable])
        categories = sorted(set(labels))
        rng = np.random.default_rng(0)
        fold = np.empty(len(labels), dtype=int)
        for c in categories:
            members = rng.permutation(np.nonzero(labels == c)[0])
            fold[members] = np.arange(len(members)) % 5
        reasons: list[str | None] = []
        for f in range(5):
            test = fold == f
            reasons += fit_and_judge(x[~test], list(labels[~test]), categories, x[test])
        print(
            f"  all 100 demo photos, each held out once (5 folds of 80/20): not sure on "
            f"{share(reasons):.1%}"
        )


def caltech_part(features: Path) -> None:
    data = np.load(features, allow_pickle=False)
    x, labels = data["x"], data["labels"]
    rng = np.random.default_rng(0)
    names = np.unique(labels)
    held = set(rng.choice(names, 20, replace=False))
    is_held = np.array([label in held for label in labels])
    known = rng.permutation(np.nonzero(~is_held)[0])
    cut = len(known) // 5
    test, fit = known[:cut], known[cut:]
    categories = sorted(set(labels[fit]))
    started = time.perf_counter()
    reasons = fit_and_judge(
        x[fit], list(labels[fit]), categories, np.concatenate([x[test], x[is_held]])
    )
    seconds = time.perf_counter() - started
    own, foreign = reasons[: len(test)], reasons[len(test) :]
    print(
        f"Caltech, 80 categories trained on {len(fit)} photos: not sure on {share(foreign):.1%} "
        f"of {int(is_held.sum())} photos of the 20 held-out categories, on {share(own):.1%} of "
        f"{len(test)} held-out photos of the 80 ({seconds:.1f} s, training included)"
    )


def cost_part(features: Path) -> None:
    data = np.load(features, allow_pickle=False)
    x, labels = data["x"], data["labels"]
    categories = sorted(set(labels))
    index = {c: i for i, c in enumerate(categories)}
    y = np.array([index[label] for label in labels])
    started = time.perf_counter()
    model, cv, _ = train(x, list(labels), categories, "efficientnet-lite0")
    train_seconds = time.perf_counter() - started
    # The reference in the same run: the Gram matrix the classifier's fit starts with.
    started = time.perf_counter()
    xn = normalise(x)
    _ = xn @ xn.T
    gram_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fitted = abstention.fit_rule(x, y, cv.probabilities if cv else None)
    rule_seconds = time.perf_counter() - started
    assert fitted is not None
    rule, reference = fitted
    one = x[:1]
    timings = {}
    for name, run in (
        ("predict_proba", lambda: model.predict_proba(one)),
        (
            "not-sure rule",
            lambda: abstention.reasons(rule, reference, normalise(one), np.ones((1, 2))),
        ),
    ):
        run()
        started = time.perf_counter()
        for _ in range(20):
            run()
        timings[name] = (time.perf_counter() - started) / 20
    print(
        f"cost at {len(x):,} photos: fitting the rule {rule_seconds:.2f} s beside the "
        f"classifier's fit {train_seconds:.2f} s ({rule_seconds / train_seconds:.1%} of it) "
        f"and its first step alone, the {len(x):,}^2 Gram matrix, {gram_seconds:.2f} s; "
        f"per photo at prediction {timings['not-sure rule'] * 1e3:.1f} ms beside "
        f"predict_proba's {timings['predict_proba'] * 1e3:.1f} ms; reference kept: "
        f"{reference.nbytes / 1e6:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--caltech", type=Path, default=CALTECH)
    parser.add_argument("--features", type=Path, default=FEATURES)
    parser.add_argument("--per-category", type=int, default=2)
    parser.add_argument("--only-cost", action="store_true", help="part 3 only")
    args = parser.parse_args()
    if args.only_cost and args.features.is_file():
        cost_part(args.features)
        return
    if args.caltech.is_dir():
        demo_part(args.caltech, args.per_category)
    else:
        print(f"skipped the demo part: {args.caltech} is missing")
    if args.features.is_file():
        caltech_part(args.features)
        cost_part(args.features)
    else:
        print(f"skipped the Caltech parts: {args.features} is missing")


if __name__ == "__main__":
    main()
