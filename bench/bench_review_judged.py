"""The data review on real photos nobody planted anything in: precision per kind against the
verdicts people (or a careful AI reviewer) made by eye, beside the planted recall.

    python bench/bench_review_judged.py [--caltech DIR] [--demo DIR] [--seeds N]
                                        [--planted-caltech] [--no-planted]

Runs the current `review_project` on
- the shared Caltech subset, as a project made with `duetml init --from` and trained (DIR is
  reused if it is one; else it is made there once, default /tmp/duetml-judged/caltech);
- the demo project (`duetml demo`, default /tmp/duetml-judged/demo),
and matches what it flags to the verdicts of EVERY file in bench/judged/ by the sha256 of the
photos: a photo for photo-level kinds (mislabel, off-topic, quality...), a pair of photos for
copies (near_duplicate, leak: every pair within a group), a pair of categories for
category-level kinds. Per kind it prints: units flagged, judged C/D/W, precision
C/(C+D+W) and lenient (C+D)/(C+D+W), units flagged but not judged (listed below the table, so
someone judges them: `bench/contact_sheets.py` draws them), and the share of photos flagged.
What two files judge differently counts as debatable (D): the judges disagree.

Beside it, in the same run, the planted recall of bench/bench_review.py (its own functions:
clothing projects with planted problems, and with --planted-caltech the Caltech one).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_review  # noqa: E402  (bench/ is not a package)

from duetml.project import Project  # noqa: E402
from duetml.review import Finding, review_project  # noqa: E402

JUDGED = Path(__file__).resolve().parent / "judged"
PAIR_KINDS = {"near_duplicate", "leak", "copy", "exact_duplicate"}
# Review kinds scored against a verdict section of another name.
SECTION_OF = {"outlier": "off_topic", "off_domain": "off_topic", "off_topic": "off_topic"}


@dataclass
class Verdicts:
    """Every verdict of bench/judged/, by what it is about."""

    photos: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # section
    pairs: dict[frozenset[str], tuple[str, str]] = field(default_factory=dict)
    categories: dict[frozenset[str], tuple[str, str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    disagreements: int = 0  # things two files judge differently (counted as D)


def load_verdicts(folder: Path = JUDGED) -> Verdicts:
    """Every file's verdicts; where two files judge the same thing differently, the judges
    disagree, and it counts as debatable (D), its notes joined."""
    verdicts = Verdicts()
    seen: dict[tuple[str, Any], list[tuple[str, str]]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        verdicts.files.append(path.name)
        for section, entries in data.items():
            if not isinstance(entries, list) or section == "missed":
                continue
            for entry in entries:
                verdict = str(entry.get("verdict", "W" if section == "clean" else "?"))
                note = f"{path.name}: {entry.get('note', '')}"
                if section == "near_duplicate":
                    shas = [p["sha256"] for p in entry["photos"]]
                    for a, b in itertools.combinations(shas, 2):
                        seen[("pair", frozenset((a, b)))].append((verdict, note))
                elif section == "category_level":
                    seen[("categories", frozenset(entry["categories"]))].append((verdict, note))
                elif section == "clean":  # judged fine: any photo-level flag on it is wrong
                    for name in ("mislabel", "off_topic", "quality"):
                        seen[(name, entry["sha256"])].append(("W", note))
                else:
                    seen[(section, entry["sha256"])].append((verdict, note))
    for (where, key), found in seen.items():
        letters = {v for v, _ in found}
        verdict = found[0][0] if len(letters) == 1 else "D"
        if len(letters) > 1:
            verdicts.disagreements += 1
        judged = (verdict, " | ".join(n for _, n in found))
        if where == "pair":
            verdicts.pairs[key] = judged
        elif where == "categories":
            verdicts.categories[key] = judged
        else:
            verdicts.photos.setdefault(where, {})[key] = judged
    return verdicts


@dataclass
class KindScore:
    flagged: int = 0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unjudged: list[str] = field(default_factory=list)
    photos: set[str] = field(default_factory=set)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def units(finding: Finding, sha: dict[str, str]) -> Iterable[tuple[Any, str]]:
    """(unit, how to list it) of a finding: photos, pairs of photos, or a category pair."""
    if finding.kind in PAIR_KINDS and len(finding.photos) >= 2:
        for a, b in itertools.combinations(finding.photos, 2):
            yield frozenset((sha[a], sha[b])), f"{a} = {b}"
    elif finding.photos:
        for rel in finding.photos:
            yield sha[rel], rel
    else:
        yield frozenset(finding.categories), " / ".join(finding.categories)


def score_project(project: Project, verdicts: Verdicts) -> tuple[dict[str, KindScore], int]:
    review = review_project(project)
    records = project.images("train") + project.images("test")
    sha = {r.rel: sha256_of(r.path) for r in records}
    scores: dict[str, KindScore] = {}
    for finding in review.findings:
        kind_score = scores.setdefault(finding.kind, KindScore())
        kind_score.photos.update(finding.photos)
        section = SECTION_OF.get(finding.kind, finding.kind)
        for unit, label in units(finding, sha):
            kind_score.flagged += 1
            if isinstance(unit, str):
                found = verdicts.photos.get(section, {}).get(unit)
            elif finding.photos:
                found = verdicts.pairs.get(unit)
            else:
                found = verdicts.categories.get(unit)
            if found is None:
                kind_score.unjudged.append(f"{label}  [{finding.id}: {finding.message[:90]}]")
            else:
                kind_score.counts[found[0]] += 1
    return scores, len(records)


def ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "  - "


# ----- the projects ----------------------------------------------------------------------------
def caltech_project(root: Path) -> Project:
    from duetml.prediction import model_path
    from duetml.training import train_project

    if not (root / ".duetml").is_dir():
        if not bench_review.CALTECH.is_dir():
            sys.exit(f"The shared Caltech subset is missing at {bench_review.CALTECH}.")
        root.parent.mkdir(parents=True, exist_ok=True)
        print(f"making {root} from {bench_review.CALTECH} (once; extraction takes minutes)")
        Project.init(root, from_source=bench_review.CALTECH)
    project = Project.open(root)
    if not model_path(project).is_file():
        train_project(project)
    return project


def demo_project(root: Path) -> Project:
    from duetml.demo import create_demo_project
    from duetml.training import train_project

    if not (root / ".duetml").is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        train_project(create_demo_project(root))
    return Project.open(root)


def planted_recall(seeds: int, caltech: bool) -> tuple[dict[str, bench_review.Tally], str]:
    totals = {kind: bench_review.Tally() for kind in bench_review.KINDS}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            root = Path(tmp) / f"clothing-{seed}"
            truth = bench_review.build_clothing(root, random.Random(seed))
            tallies, _ = bench_review.run("clothing", root, truth)
            for kind in bench_review.KINDS:
                totals[kind].add(tallies[kind])
            runs.append(f"clothing seed {seed}")
        if caltech:
            root = Path(tmp) / "caltech"
            truth = bench_review.build_caltech(root, random.Random(101))
            tallies, _ = bench_review.run("caltech", root, truth)
            for kind in bench_review.KINDS:
                totals[kind].add(tallies[kind])
            runs.append("caltech (seed 101)")
    return totals, ", ".join(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--caltech", type=Path, default=Path("/tmp/duetml-judged/caltech"))
    parser.add_argument("--demo", type=Path, default=Path("/tmp/duetml-judged/demo"))
    parser.add_argument("--seeds", type=int, default=2, help="planted clothing projects")
    parser.add_argument("--planted-caltech", action="store_true", help="also the planted Caltech")
    parser.add_argument("--no-planted", action="store_true", help="skip the planted recall")
    args = parser.parse_args()
    verdicts = load_verdicts()
    print(f"verdict files: {', '.join(verdicts.files)}")
    print(f"judged differently by two files (counted as D): {verdicts.disagreements}")
    planted: dict[str, bench_review.Tally] = {}
    planted_runs = "skipped"
    if not args.no_planted:
        planted, planted_runs = planted_recall(args.seeds, args.planted_caltech)
    unjudged_lines: list[str] = []
    for name, project in (
        ("caltech", caltech_project(args.caltech)),
        ("demo", demo_project(args.demo)),
    ):
        scores, photo_count = score_project(project, verdicts)
        flagged = set().union(*(s.photos for s in scores.values())) if scores else set()
        print()
        print(
            f"{name}: {photo_count} photos, {len(flagged)} flagged "
            f"({len(flagged) / max(photo_count, 1):.1%}); planted recall from: {planted_runs}"
        )
        print(
            f"{'kind':<15} {'flagged':>7} {'C':>4} {'D':>4} {'W':>4} {'prec':>5} {'lenient':>7} "
            f"{'unjudged':>8} {'photos':>7} {'planted recall':>15}"
        )
        for kind, s in sorted(scores.items()):
            c, d, w = s.counts["C"], s.counts["D"], s.counts["W"]
            tally = planted.get(kind)
            recall = f"{tally.found}/{tally.planted}" if tally and tally.planted else "-"
            print(
                f"{kind:<15} {s.flagged:>7} {c:>4} {d:>4} {w:>4} {ratio(c, c + d + w):>5} "
                f"{ratio(c + d, c + d + w):>7} {len(s.unjudged):>8} "
                f"{len(s.photos) / max(photo_count, 1):>7.1%} {recall:>15}"
            )
            unjudged_lines += [f"  {name} {kind}: {line}" for line in s.unjudged]
        if not scores:
            print("(no findings)")
    if planted:
        print()
        print("planted recall per kind (bench_review.py's functions, same run):")
        for kind in bench_review.KINDS:
            t = planted[kind]
            if t.planted:
                print(f"  {kind:<15} {t.found}/{t.planted} = {ratio(t.found, t.planted)}")
    if unjudged_lines:
        print()
        print(f"flagged but not judged ({len(unjudged_lines)}): judge them, add the verdicts")
        print("\n".join(unjudged_lines))


if __name__ == "__main__":
    main()
