"""The facts duetml computes about a project for the agents, and their rendering as text.

Counts, imbalance, tiny and empty categories, photos that sit in two categories, and once a
model exists its evaluation: accuracy, the pairs of categories it confuses most, and the photos
it gets wrong or is least sure of. The model evaluation is cached until the model or data change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from duetml import jsonfile
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.errors import DuetmlError
from duetml.events import InteractionLog
from duetml.llm import clean_text

if TYPE_CHECKING:
    from duetml.evaluation import Mistake
    from duetml.health import CategoryCount, ModelSummary
    from duetml.project import Project


class LeastSure(TypedDict):
    """A photo the model classifies correctly but with little confidence (cross-validation)."""

    image: str
    true: str
    confidence: float


@dataclass(frozen=True)
class Evaluation:
    """The model's results as the agents are told them (a digest of evaluation.EvalReport)."""

    source: str  # "test set" or "cross-validation"
    accuracy: float
    stale: bool = False
    confused_pairs: list[tuple[str, str, int, float]] = field(default_factory=list)
    mistakes: list[Mistake] = field(default_factory=list)
    least_sure: list[LeastSure] = field(default_factory=list)


@dataclass(frozen=True)
class EvaluationUnavailable:
    """Why a trained model has no results to tell (e.g. too few photos to cross-validate)."""

    reason: str


class DuplicateSummary(TypedDict):
    groups: int  # groups of identical photos in different categories
    examples: list[list[str]]  # the first few groups, project-relative paths


class Facts(TypedDict):
    """What the agents are told about the project, gathered from the core for one request."""

    goal: str
    categories: list[CategoryCount]
    images: int
    test_images: int
    warnings: list[str]
    duplicates: DuplicateSummary
    model: ModelSummary | None
    evaluation: Evaluation | EvaluationUnavailable | None
    # Most important first, as GET /api/review sends them: the facts are plain JSON data.
    findings: list[dict[str, Any]]


class _AgentTaggedLog(InteractionLog):
    """An interaction log whose entries say the agents caused them (`by: "agent"`).

    The context builder evaluates the model, and `evaluate_project` logs that; the proactive
    agent must not mistake its own looks for the user's activity.
    """

    def record(self, event: str, **details: Any) -> dict[str, Any]:
        return super().record(event, **details, by="agent")


def short(text: object, limit: int) -> str:
    """One clean line of at most `limit` characters."""
    return clean_text(str(text), max_chars=limit, one_line=True)


def _model_key(project: Project) -> tuple[Any, ...] | None:
    from duetml.prediction import model_path

    try:
        stat = model_path(project).stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class FactGatherer:
    """Facts from the core, with the model evaluation cached until the model or data change."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.Lock()
        self._eval_key: tuple[Any, ...] | None = None
        self._eval: Evaluation | EvaluationUnavailable | None = None

    def gather(self, budget: Budget = DEFAULT_BUDGET) -> Facts:
        from duetml.health import duplicate_groups, project_health

        project = self.project
        health = project_health(project, check_files=False)
        groups = duplicate_groups(project)
        facts: Facts = {
            "goal": project.goal,
            "categories": health.categories,
            "images": health.images,
            "test_images": health.test_images,
            "warnings": [w.message for w in health.warnings if w.kind != "duplicate"],
            "duplicates": {"groups": len(groups), "examples": groups[:5]},
            "model": health.model,
            "evaluation": self._evaluation(budget) if health.model else None,
            # Only with a model: before training the features may not be cached, and the
            # review would first have to compute them, far too slow for one request.
            "findings": self._findings(budget) if health.model else [],
        }
        return facts

    def _findings(self, budget: Budget) -> list[dict[str, Any]]:
        """The data review's findings, most important first (dismissed ones never appear)."""
        from duetml.review import review_project

        try:
            # Never extract features here: only what the last training cached is reviewed.
            review = review_project(self._quiet_project(), extract=False)
        except DuetmlError:
            return []  # e.g. no features cached yet: the other facts still stand
        return [jsonfile.plain(f) for f in review.findings[: budget.findings]]

    def _quiet_project(self) -> Project:
        """The project, with whatever the core logs on the agents' behalf tagged as theirs."""
        from duetml.project import Project

        quiet = Project(self.project.root, source=self.project.log.source)
        quiet.log = _AgentTaggedLog(quiet.state_dir, source=quiet.log.source)
        return quiet

    def _evaluation(self, budget: Budget) -> Evaluation | EvaluationUnavailable | None:
        from duetml.evaluation import evaluate_project
        from duetml.prediction import load_model

        project = self.project
        key = (
            _model_key(project),
            project.fingerprint(),
            tuple(r.rel for r in project.images("test")),
        )
        with self._lock:
            if key == self._eval_key:
                return self._eval
            quiet = self._quiet_project()
            try:
                model = load_model(quiet)
                report = evaluate_project(quiet)
            except DuetmlError as exc:  # e.g. too few photos for cross-validation
                result: Evaluation | EvaluationUnavailable = EvaluationUnavailable(str(exc))
            else:
                result = Evaluation(
                    source=report.source,
                    accuracy=report.accuracy,
                    stale=report.stale,
                    confused_pairs=report.confused_pairs(5),
                    mistakes=report.mistakes[: budget.results_photos],
                    least_sure=_least_sure(model.meta.get("cv_results") or [], 4),
                )
            self._eval_key, self._eval = key, result
            return result


# A correct prediction at or above this confidence is not "unsure"; listing it would be noise.
UNSURE_BELOW = 0.8


def _least_sure(rows: Sequence[Sequence[Any]], limit: int) -> list[LeastSure]:
    """Correct out-of-fold predictions with the lowest confidence: the borderline photos."""
    correct = [r for r in rows if len(r) == 4 and r[1] == r[2] and float(r[3]) < UNSURE_BELOW]
    correct.sort(key=lambda r: float(r[3]))
    return [
        {"image": str(r[0]), "true": str(r[1]), "confidence": round(float(r[3]), 4)}
        for r in correct[:limit]
    ]


class PhotoNumbers:
    """One number per photo the facts mention (#1, #2, ...), shared by the facts and the sheets.

    A photo named by a finding and again as a mistake keeps its first number, so a model (and
    the proposals it writes) can refer to "#3" wherever it saw it.
    """

    def __init__(self) -> None:
        self._by_rel: dict[str, int] = {}

    def number(self, rel: str) -> int:
        return self._by_rel.setdefault(rel, len(self._by_rel) + 1)

    def get(self, rel: str) -> int | None:
        return self._by_rel.get(rel)

    def rel_of(self, number: int) -> str | None:
        for rel, n in self._by_rel.items():
            if n == number:
                return rel
        return None

    def as_dict(self) -> dict[int, str]:
        return {n: rel for rel, n in self._by_rel.items()}

    def by_rel(self) -> dict[str, int]:
        return dict(self._by_rel)

    def __len__(self) -> int:
        return len(self._by_rel)


def number_photos(facts: Facts, budget: Budget = DEFAULT_BUDGET) -> PhotoNumbers:
    """Numbers in the order the facts list them: findings first, then the model's mistakes."""
    numbers = PhotoNumbers()
    for finding in facts.get("findings") or []:
        for rel in finding["photos"][: budget.photos_per_finding]:
            numbers.number(rel)
    evaluation = facts.get("evaluation")
    if isinstance(evaluation, Evaluation):
        for item in evaluation.mistakes + evaluation.least_sure:
            numbers.number(str(item["image"]))
    return numbers


def render_facts(
    facts: Facts,
    budget: Budget = DEFAULT_BUDGET,
    numbers: PhotoNumbers | None = None,
    shown: Mapping[int, int] | None = None,
) -> str:
    """The facts as plain lines; the caller fences them (they hold category and file names).

    `numbers` gives each photo mentioned its "#n"; `shown` maps a number to the attached image
    it appears on, so the text points at an image only when that image is really attached.
    """
    numbers = numbers if numbers is not None else number_photos(facts, budget)
    shown = shown or {}

    def name(text: object) -> str:
        return short(text, budget.name_chars)

    def photo(rel: object) -> str:
        n = numbers.number(str(rel))
        where = f", on image {shown[n]}" if n in shown else ""
        return f"#{n} ({short(rel, 100)}{where})"

    lines: list[str] = []
    categories = facts["categories"]
    if categories:
        lines.append("Categories (number. name: training photos, + test photos):")
        entries = []
        for index, cat in enumerate(categories, start=1):
            test = f" (+{cat['test_images']} test)" if cat.get("test_images") else ""
            entries.append(f"{index}. {name(cat['name'])}: {cat['images']}{test}")
        if len(entries) <= budget.categories_listed:
            lines += entries
        else:  # every name stays listed; many categories share a line to stay within budget
            lines += ["; ".join(entries[i : i + 6]) for i in range(0, len(entries), 6)]
        lines.append(
            f"Total: {facts['images']} training photos in {len(categories)} categories"
            + (f", {facts['test_images']} test photos." if facts.get("test_images") else ".")
        )
    else:
        lines.append("No categories yet: the user has not added any photos.")
    if facts["warnings"]:
        lines.append("Checks by duetml:")
        lines += [f"- {short(w, 240)}" for w in facts["warnings"][:12]]
    dup = facts["duplicates"]
    if dup["groups"]:
        lines.append(
            f"The same photo sits in more than one category ({dup['groups']} case(s)), e.g.:"
        )
        lines += [f"- {' = '.join(short(r, 120) for r in group[:3])}" for group in dup["examples"]]
    lines += _finding_lines(facts.get("findings"), photo, budget)
    model = facts.get("model")
    if not model:
        lines.append("Model: not trained yet.")
    else:
        acc = model.get("cv_accuracy")
        added = model.get("cv_added_since") or 0
        acc_text = (
            "no accuracy estimate"
            if acc is None
            else f"cross-validated accuracy {acc:.1%}"
            if not added
            else f"held-out accuracy {acc:.1%} (the last full cross-validation, and {added} "
            "photo(s) added since predicted by the model before them)"
        )
        when = ago(model.get("trained_at"))
        stale = (
            "; the data changed since, so it is out of date" if model.get("older_than_data") else ""
        )
        lines.append(f"Model: trained {when}, {acc_text}{stale}.")
        lines += _evaluation_lines(facts.get("evaluation"), name, photo)
    return clean_text("\n".join(lines), max_chars=budget.facts_chars)


# How each kind of finding is named to the agents, with the certainty the review gives it.
# Measured against judged verdicts on real photos (bench/bench_review_judged.py): a flag is a
# hint to look at, never a verdict, and the agents must say so.
FINDING_NAMES = {
    "mislabel": "probably mislabelled",
    "outlier": "possibly off-topic",
    "near_duplicate": "copies of one picture (checked on the pixels)",
    "leak": "test photos that are copies of training photos (checked on the pixels)",
    "quality": "photo quality",
    "overlap": "between two categories",
    "mixed": "maybe two kinds in one category",
    "small": "too few photos",
}
CATEGORY_QUESTIONS = ("overlap", "mixed")  # questions about the categories, not photo fixes


def _finding_lines(
    findings: Sequence[dict[str, Any]] | None, photo: Callable[[object], str], budget: Budget
) -> list[str]:
    """Each finding as the review states it: what it is, how sure (the score it gives), each
    photo by number; a question about categories is put as one, never as a per-photo fix."""
    if not findings:
        return []
    lines = [
        "Possible problems duetml's data review found, most important first (hints to check "
        "by looking at the photos, not verdicts):"
    ]
    for finding in findings:
        kind = finding["kind"]
        name = FINDING_NAMES.get(kind, kind.replace("_", " "))
        details = finding.get("details") or {}
        photos = list(finding["photos"])
        message = short(finding["message"], 300)
        if kind in CATEGORY_QUESTIONS:
            cats = " and ".join(repr(short(c, 60)) for c in finding["categories"])
            lines.append(
                f"- {name} ({cats}): {message} A question for the user about how the "
                "categories are defined (what separates them), not a fix for single photos."
            )
            continue
        sure = ""
        if kind == "mislabel" and "label_quality" in details:
            sure = (
                f" (label quality {float(details['label_quality']):.2f}, 0 to 1: the lower, the "
                "more likely the category is wrong; check by looking)"
            )
        shown = photos[: budget.photos_per_finding]
        more = len(photos) - len(shown)
        refs = ", ".join(photo(rel) for rel in shown) + (f" and {more} more" if more > 0 else "")
        suggestion = finding.get("suggestion")
        label = suggestion["label"] if suggestion else ""
        touched = list(suggestion.get("photos") or []) if suggestion else []
        if label and len(photos) > 1 and touched:
            which = photo_list(touched, photo, budget)
            todo = f" Suggested, photo by photo: {short(label, 120)} (for {which})."
        else:
            todo = f" Suggested: {short(label, 120)}." if label else ""
        lines.append(f"- {name}{sure}: {message}" + (f" Photos: {refs}." if refs else "") + todo)
    return lines


def photo_list(rels: Sequence[str], photo: Callable[[object], str], budget: Budget) -> str:
    shown = [photo(rel).split(" ")[0] for rel in rels[: budget.photos_per_finding]]
    more = len(rels) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _evaluation_lines(
    evaluation: Evaluation | EvaluationUnavailable | None,
    name: Any,
    photo: Callable[[object], str],
) -> list[str]:
    if evaluation is None:
        return []
    if isinstance(evaluation, EvaluationUnavailable):
        return [f"Evaluation: not available ({short(evaluation.reason, 200)})."]
    lines = [f"Evaluation on the {evaluation.source}: accuracy {evaluation.accuracy:.1%}."]
    if evaluation.confused_pairs:
        lines.append("Most confused (true category -> predicted as: photos, share of true):")
        lines += [
            f"- {name(t)} -> {name(p)}: {count} ({share:.0%})"
            for t, p, count, share in evaluation.confused_pairs
        ]
    if evaluation.mistakes:
        lines.append("Photos the model gets wrong, most confident first:")
        for mistake in evaluation.mistakes:
            lines.append(
                f"- {photo(mistake['image'])}: is {name(mistake['true'])}, "
                f"predicted {name(mistake['predicted'])} ({mistake['confidence']:.0%} sure)"
            )
    if evaluation.least_sure:
        lines.append("Correct, but the model is least sure of (cross-validation):")
        for item in evaluation.least_sure:
            lines.append(
                f"- {photo(item['image'])}: {name(item['true'])} ({item['confidence']:.0%} sure)"
            )
    return lines


def ago(ts: object) -> str:
    """How long ago a timestamp was, in words ("5 min ago")."""
    try:
        seconds = max(time.time() - float(ts), 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "at an unknown time"
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
