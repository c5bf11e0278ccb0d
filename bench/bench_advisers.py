"""Which model advises best: scenario projects with one planted problem each, scored.

    python bench/bench_advisers.py                          # the models in your settings
    python bench/bench_advisers.py --adviser ollama:qwen2.5vl --adviser ollama:gemma3
    python bench/bench_advisers.py --adviser openai:gpt-4o --scenario mislabel

Each scenario is a small project built from the shipped demo photos (duetml/demo_data) and
../shared/data/caltech101-subset, trained, with one problem planted as a new user would make
it: a goal the categories do not serve (the paper's edible / not edible example), shoes filed
under hat, a re-encoded copy of a photo in another category, off-topic photos in a category,
two categories that mean the same, one category with far too few photos.

For every adviser (a provider:model spec, used as the passive agent answering "ask about my
training data" and as the proactive agent looking on its own) the reply is scored on whether
it names the planted problem: for each group of words the problem must be named by, 1 if the
reply contains one of them; for planted photos, the share of them the reply names (by their
"#n" from the facts, their file name, or a proposal that acts on them). A reply's score is the
mean over its groups, in [0, 1].

References measured in the same run, without any model: "oracle" (an answer naming exactly
the planted problem and photos: 1.00 by construction) and "generic" (sound advice that names
nothing: what a model scores by saying nothing specific).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from duetml.agents import AgentSession
from duetml.errors import DuetmlError
from duetml.llm import Provider, get_provider, parse_spec
from duetml.project import Project
from duetml.training import train_project

DEMO = Path(__file__).resolve().parents[1] / "duetml" / "demo_data"
# ../shared/data beside the checkout, or wherever DUETML_SHARED_DATA points.
SHARED = Path(
    os.environ.get("DUETML_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
CALTECH = SHARED / "caltech101-subset"
GENERIC_ANSWER = (
    "Your project looks like a good start. Make sure each category has enough varied photos, "
    "taken in different light and from different angles, and train again after changes."
)


@dataclass(frozen=True)
class Scenario:
    name: str
    problem: str  # what is planted, for the table
    goal: str
    groups: tuple[tuple[str, ...], ...]  # each: the reply must contain one of these words
    needs_caltech: bool = False


@dataclass
class Built:
    scenario: Scenario
    project: Project
    planted: list[str]  # project-relative paths of the planted photos (may be empty)


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "goal_mismatch",
            "concrete categories for an edible / not edible goal",
            "A kitchen helper that tells whether something is edible or not edible.",
            (
                ("edible", "inedible", "not food", "non-food", "food or not"),
                ("merge", "combine", "group", "broader", "two categories", "abstract"),
            ),
            needs_caltech=True,
        ),
        Scenario(
            "mislabel",
            "4 shoe photos filed under hat",
            "Sort photos of my clothes by type for a wardrobe app.",
            (("shoe",),),
        ),
        Scenario(
            "near_duplicate",
            "a re-encoded, resized copy of a pants photo in t-shirt",
            "Sort photos of my clothes by type for a wardrobe app.",
            (("duplicate", "same photo", "copy", "twice", "identical"),),
        ),
        Scenario(
            "outlier",
            "2 off-topic photos (a pagoda, an airplane) in t-shirt",
            "Sort photos of my clothes by type for a wardrobe app.",
            (
                ("t-shirt", "t-shirts"),
                (
                    "not clothing",
                    "pagoda",
                    "airplane",
                    "building",
                    "plane",
                    "off-topic",
                    "does not belong",
                    "doesn't belong",
                    "unrelated",
                ),
            ),
            needs_caltech=True,
        ),
        Scenario(
            "overlap",
            "shoes split at random into shoes and sneakers",
            "Sort photos of my clothes by type for a wardrobe app.",
            (("sneakers",), ("overlap", "same", "merge", "confus", "distinguish", "difference")),
        ),
        Scenario(
            "imbalance",
            "shoes has 3 photos, the others 20",
            "Sort photos of my clothes by type for a wardrobe app.",
            (("shoes",), ("only 3", "few", "more photos", "small", "imbalance", "fewer")),
        ),
    )
}


def _demo(category: str, count: int, skip: int = 0) -> list[Path]:
    return sorted((DEMO / category).glob("*.jpg"))[skip : skip + count]


def build(name: str, root: Path) -> Built:
    """The scenario's project, trained, and the planted photos' paths."""
    scenario = SCENARIOS[name]
    if scenario.needs_caltech and not CALTECH.is_dir():
        raise DuetmlError(f"{CALTECH} is missing: scenario {name} needs the Caltech subset.")
    project, _ = Project.init(root / name, goal=scenario.goal)
    planted: list[str] = []

    def clothes(counts: dict[str, int]) -> None:
        for category, count in counts.items():
            project.add_images(category, _demo(category, count))

    if name == "goal_mismatch":
        for category in ("strawberry", "pizza", "lobster", "chair", "umbrella", "lamp"):
            project.add_images(category, sorted((CALTECH / category).glob("*.jpg"))[:12])
    elif name == "mislabel":
        clothes({"hat": 18, "pants": 18, "shoes": 18, "t-shirt": 18})
        before = {r.rel for r in project.images("train", "hat")}
        project.add_images("hat", _demo("shoes", 4, skip=20))
        planted = sorted({r.rel for r in project.images("train", "hat")} - before)
    elif name == "near_duplicate":
        clothes({"hat": 15, "pants": 15, "shoes": 15, "t-shirt": 15})
        original = project.images("train", "pants")[3]
        with Image.open(original.path) as image:
            copy = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4))
        out = io.BytesIO()
        copy.save(out, "PNG")
        copy_dir = root / "copies"
        copy_dir.mkdir(exist_ok=True)
        (copy_dir / "favourite-trousers.png").write_bytes(out.getvalue())
        before = {r.rel for r in project.images("train", "t-shirt")}
        project.add_images("t-shirt", [copy_dir / "favourite-trousers.png"])
        copied = sorted({r.rel for r in project.images("train", "t-shirt")} - before)
        if len(copied) != 1:
            raise DuetmlError("The re-encoded copy was not added: the scenario cannot be built.")
        planted = [original.rel, *copied]
    elif name == "outlier":
        clothes({"hat": 15, "pants": 15, "shoes": 15, "t-shirt": 15})
        before = {r.rel for r in project.images("train", "t-shirt")}
        strays = [sorted((CALTECH / c).glob("*.jpg"))[0] for c in ("pagoda", "airplanes")]
        project.add_images("t-shirt", strays)
        planted = sorted({r.rel for r in project.images("train", "t-shirt")} - before)
    elif name == "overlap":
        clothes({"hat": 16, "pants": 16})
        shoes = _demo("shoes", 24)
        project.add_images("shoes", shoes[0::2])
        project.add_images("sneakers", shoes[1::2])
    elif name == "imbalance":
        clothes({"hat": 20, "pants": 20, "shoes": 3, "t-shirt": 20})
    train_project(project)
    if planted:
        planted = [project.image(rel).rel for rel in planted]  # fails loudly if the plan broke
    return Built(scenario, project, planted)


def photo_numbers(project: Project) -> dict[int, str]:
    """The "#n" the agents are shown for each photo the facts name (same state, same numbers)."""
    session = AgentSession(project, passive=get_provider("none"), proactive=get_provider("none"))
    return session.builder.build("data", vision=False).photos


def _named(reply: str, rel: str, numbers: dict[int, str], acted_on: set[str]) -> bool:
    if rel in acted_on:
        return True
    number = next((n for n, r in numbers.items() if r == rel), None)
    if number is not None and re.search(rf"#\s*{number}(?!\d)", reply):
        return True
    name = Path(rel).name.lower()
    return name in reply.lower() or Path(rel).stem.lower() in reply.lower()


def score(
    reply: str,
    built: Built,
    numbers: dict[int, str],
    proposals: Sequence[dict[str, Any]] = (),
) -> float:
    """Does the reply name the planted problem? Mean over the scenario's groups, in [0, 1]."""
    text = reply.lower()
    acted_on = {rel for p in proposals for rel in p.get("suggestion", {}).get("photos", [])}
    parts = [1.0 if any(word in text for word in group) else 0.0 for group in built.scenario.groups]
    if built.planted:
        named = sum(_named(reply, rel, numbers, acted_on) for rel in built.planted)
        parts.append(named / len(built.planted))
    return sum(parts) / len(parts)


def oracle_answer(built: Built, numbers: dict[int, str]) -> str:
    """What a perfect adviser says: every word group, every planted photo by its number."""
    by_rel = {rel: n for n, rel in numbers.items()}
    photos = [f"#{by_rel[r]}" if r in by_rel else Path(r).name for r in built.planted]
    words = " ".join(group[0] for group in built.scenario.groups)
    return f"Look at {', '.join(photos) or 'your categories'}: {words}."


def run_adviser(
    make: Callable[[str], Provider], built: Built, numbers: dict[int, str]
) -> dict[str, Any]:
    """The adviser as the passive agent ("ask about my data") and as the proactive agent."""
    session = AgentSession(built.project, passive=make("passive"), proactive=make("proactive"))
    result: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        reply = "".join(session.ask_stream("", about="data"))
        last = session.conversation()[-1]
        result["passive"] = score(reply, built, numbers, last.get("proposals") or ())
    except DuetmlError as exc:
        result["passive"], result["error"] = 0.0, str(exc)
    result["passive_s"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        advice = session.proactive_pass(force=True) or ""
        last = session.conversation()[-1]
        proposals = (last.get("proposals") or ()) if last["kind"] == "proactive" else ()
        result["proactive"] = score(advice, built, numbers, proposals) if advice else 0.0
    except DuetmlError as exc:
        result["proactive"], result["error"] = 0.0, str(exc)
    result["proactive_s"] = time.perf_counter() - start
    # The next adviser starts from the same project and an empty conversation.
    (built.project.state_dir / "conversation.jsonl").unlink(missing_ok=True)
    (built.project.state_dir / "agents.json").unlink(missing_ok=True)
    return result


def provider_maker(spec: str | None, base_url: str | None) -> Callable[[str], Provider]:
    """A provider per agent: `spec` for both, or each agent's own from the user's settings."""
    from duetml.agents import choice

    def make(agent: str) -> Provider:
        if spec is None:
            config = choice.resolve(agent, choice.load_user_settings())
            return choice.make_provider(config)
        name, model = parse_spec(spec)
        return get_provider(name, model, base_url=base_url, agent=agent)

    return make


def main(argv: Sequence[str] | None = None, out: Any = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adviser", action="append", help="provider:model (repeatable)")
    parser.add_argument("--base-url", help="the server of --adviser models (default: theirs)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    out = out or sys.stdout
    names = args.scenario or list(SCENARIOS)
    if not CALTECH.is_dir():
        skipped = [n for n in names if SCENARIOS[n].needs_caltech]
        names = [n for n in names if not SCENARIOS[n].needs_caltech]
        print(f"({CALTECH} missing: skipping {', '.join(skipped)})", file=out)
    advisers = args.adviser or [None]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        built = [build(name, Path(tmp)) for name in names]
        numbers = {b.scenario.name: photo_numbers(b.project) for b in built}
        print(
            f"{len(built)} scenario projects built and trained in "
            f"{time.perf_counter() - start:.1f} s",
            file=out,
        )
        for b in built:  # whether the review makes the planted photos visible to the agents
            if b.planted:
                shown = sum(rel in numbers[b.scenario.name].values() for rel in b.planted)
                print(
                    f"  {b.scenario.name}: {shown} of {len(b.planted)} planted photos are "
                    "numbered in the agents' facts",
                    file=out,
                )
        for b in built:
            n = numbers[b.scenario.name]
            results.setdefault("oracle", {})[b.scenario.name] = {
                "passive": score(oracle_answer(b, n), b, n),
                "proactive": score(oracle_answer(b, n), b, n),
            }
            results.setdefault("generic", {})[b.scenario.name] = {
                "passive": score(GENERIC_ANSWER, b, n),
                "proactive": score(GENERIC_ANSWER, b, n),
            }
        for spec in advisers:
            make = provider_maker(spec, args.base_url)
            label = spec or "settings: " + ", ".join(
                f"{a} {make(a).name}:{make(a).model}" for a in ("passive", "proactive")
            )
            results[label] = {
                b.scenario.name: run_adviser(make, b, numbers[b.scenario.name]) for b in built
            }
    for label, rows in results.items():
        print_table(label, rows, built, out)
    return results


def print_table(label: str, rows: dict[str, dict[str, Any]], built: list[Built], out: Any) -> None:
    reference = label in ("oracle", "generic")
    print(f"\n{label}" + (" (reference, no model)" if reference else ""), file=out)
    print(f"  {'scenario':<16} {'planted problem':<56} {'passive':>8} {'proactive':>9}", file=out)
    for b in built:
        row = rows[b.scenario.name]
        times = "" if reference else f"  ({row['passive_s']:.1f} s, {row['proactive_s']:.1f} s)"
        error = f"  error: {row['error'][:80]}" if row.get("error") else ""
        print(
            f"  {b.scenario.name:<16} {b.scenario.problem:<56} {row['passive']:>8.2f} "
            f"{row['proactive']:>9.2f}{times}{error}",
            file=out,
        )
    mean_p = sum(rows[b.scenario.name]["passive"] for b in built) / max(len(built), 1)
    mean_a = sum(rows[b.scenario.name]["proactive"] for b in built) / max(len(built), 1)
    print(f"  {'mean':<16} {'':<56} {mean_p:>8.2f} {mean_a:>9.2f}", file=out)


if __name__ == "__main__":
    main()
