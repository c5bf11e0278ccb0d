"""The analysis of a study: per item the medians and IQR per condition, a Mann-Whitney U test
with its p-value and effect size (scipy), the raters' agreement (Krippendorff's alpha), what
each participant did (from the event logs), and plots of the items by condition.

Withdrawn participants are left out of everything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from duetml import atomic
from duetml.study.activity import task_activity
from duetml.study.design import Study
from duetml.study.items import ALL_ITEMS, EQ, UMUX, UQ
from duetml.study.ratings import all_ratings
from duetml.study.session import ParticipantSession

# The permutation distribution is enumerated in full (an exact p, ties included) up to this
# many ways of splitting the pooled values; beyond, the normal approximation with the tie
# correction is used, and the method says so.
EXACT_LIMIT = 200_000
EQ_UNITS = ("ratings", "participants")


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> dict[str, Any] | None:
    """Two-sided Mann-Whitney U of x against y: U of x, p, the method, and the rank-biserial
    correlation r = 2U/(n1 n2) - 1 (positive when x tends to be larger).

    "exact" (scipy's exact distribution) when there are no ties; with ties (Likert answers
    nearly always have them) the exact permutation distribution of U, which scipy enumerates
    when PermutationMethod's n_resamples covers every split; else "asymptotic".
    """
    from scipy import stats

    if len(x) < 1 or len(y) < 1:
        return None
    tied = len(set(x) | set(y)) < len(x) + len(y)
    splits = math.comb(len(x) + len(y), len(x))
    if not tied:
        method: Any = "exact"
        name = "exact"
    elif splits <= EXACT_LIMIT:
        method = stats.PermutationMethod(n_resamples=splits)
        name = "exact permutation"
    else:
        method = "asymptotic"
        name = "asymptotic (tie-corrected)"
    result = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    u = float(result.statistic)
    return {
        "U": u,
        "p": float(result.pvalue),
        "method": name,
        "rank_biserial": 2 * u / (len(x) * len(y)) - 1,
    }


def describe(values: Sequence[float]) -> dict[str, Any]:
    import numpy as np

    if not values:
        return {"n": 0, "median": None, "q1": None, "q3": None, "values": []}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {
        "n": len(values),
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "values": list(values),
    }


def participant_answers(study: Study) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (participant, condition, task, item, value) of the questionnaires, and who withdrew."""
    rows, withdrawn = [], []
    for p in study.design.participants:
        record = ParticipantSession(study, p.id).record()
        if record.get("withdrawn"):
            withdrawn.append(p.id)
            continue
        for tid, done in record["tasks"].items():
            for item, value in (done.get("answers") or {}).items():
                rows.append(
                    {
                        "participant": p.id,
                        "condition": p.condition,
                        "task": tid,
                        "item": item,
                        "value": value,
                    }
                )
    return rows, withdrawn


def krippendorff_alpha(ratings: list[dict[str, Any]], item: str) -> dict[str, Any]:
    """Ordinal Krippendorff's alpha of the raters on one item (units: rated data)."""
    import krippendorff
    import numpy as np

    rows = [r for r in ratings if r["item"] == item]
    raters = sorted({r["rater"] for r in rows})
    units = sorted({(r["participant"], r["task"]) for r in rows})
    result: dict[str, Any] = {"raters": len(raters), "units": len(units), "alpha": None}
    if len(raters) < 2 or len(units) < 2:
        result["note"] = "needs two raters and two rated units"
        return result
    matrix = np.full((len(raters), len(units)), np.nan)
    for r in rows:
        matrix[raters.index(r["rater"]), units.index((r["participant"], r["task"]))] = r["value"]
    if len({v for v in matrix.flatten() if not np.isnan(v)}) < 2:
        result["note"] = "every rating is the same value: alpha is undefined"
        return result
    result["alpha"] = float(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    )
    return result


# The activity measures the report describes per condition (export.ACTIVITY_MEASURES, what the
# export writes, has proactive_advice too).
SUMMARISED_MEASURES = (
    "seconds",
    "operations",
    "agent_messages",
    "proposals_shown",
    "proposals_applied",
    "questions_chat",
    "questions_buttons",
)


def build_report(study: Study, eq_unit: str = "ratings") -> dict[str, Any]:
    """The whole analysis as one JSON-ready dict (the CLI prints it or its --json)."""
    if eq_unit not in EQ_UNITS:
        raise ValueError(eq_unit)
    conditions = list(study.design.conditions)
    answers, withdrawn = participant_answers(study)
    ratings = all_ratings(study)
    activity = [
        {**task_activity(study, p.id, t.id), "condition": p.condition}
        for p in study.design.participants
        if p.id not in withdrawn
        for t in study.design.tasks
    ]
    return {
        "conditions": conditions,
        "participants": {
            c: [
                p.id
                for p in study.design.participants
                if p.condition == c and p.id not in withdrawn
            ]
            for c in conditions
        },
        "withdrawn": withdrawn,
        "eq_unit": eq_unit,
        "items": _compared_items(study, answers, ratings, eq_unit),
        "agreement": {it.id: krippendorff_alpha(ratings, it.id) for it in EQ.items},
        "raters": sorted({r["rater"] for r in ratings}),
        "activity": activity,
        "activity_summary": _activity_summary(study, activity),
    }


def _compared_items(
    study: Study, answers: list[dict[str, Any]], ratings: list[dict[str, Any]], eq_unit: str
) -> list[dict[str, Any]]:
    """Each questionnaire item per task: the answers (participants) or ratings (raters, EQ)
    described per condition, and compared by a Mann-Whitney U test when there are two."""
    conditions = list(study.design.conditions)
    condition_of = {p.id: p.condition for p in study.design.participants}
    items: list[dict[str, Any]] = []

    def add_item(item: str, task: str, source: str, values_by: dict[str, list[float]]) -> None:
        entry: dict[str, Any] = {
            "item": item,
            "text": ALL_ITEMS[item].text,
            "task": task,
            "source": source,
            "by_condition": {c: describe(values_by.get(c, [])) for c in conditions},
            "test": None,
        }
        if len(conditions) == 2 and all(values_by.get(c) for c in conditions):
            entry["test"] = mann_whitney(values_by[conditions[0]], values_by[conditions[1]])
            entry["test"]["x"], entry["test"]["y"] = conditions
        items.append(entry)

    for task in study.design.tasks:
        for questionnaire in (UQ, UMUX):
            for it in questionnaire.items:
                values = [r for r in answers if r["task"] == task.id and r["item"] == it.id]
                if values:
                    by: dict[str, list[float]] = {}
                    for r in values:
                        by.setdefault(r["condition"], []).append(r["value"])
                    add_item(it.id, task.id, "participants", by)
        for it in EQ.items:
            values = [r for r in ratings if r["task"] == task.id and r["item"] == it.id]
            if values:
                by = _ratings_by_condition(values, eq_unit, condition_of)
                add_item(it.id, task.id, f"raters ({eq_unit})", by)
    return items


def _ratings_by_condition(
    values: list[dict[str, Any]], eq_unit: str, condition_of: dict[str, str]
) -> dict[str, list[float]]:
    import numpy as np

    by: dict[str, list[float]] = {}
    if eq_unit == "ratings":  # as the paper's test: every rating one observation
        for r in values:
            by.setdefault(condition_of[r["participant"]], []).append(r["value"])
    else:  # each participant's mean over the raters
        per: dict[str, list[float]] = {}
        for r in values:
            per.setdefault(r["participant"], []).append(r["value"])
        for pid, vals in sorted(per.items()):
            by.setdefault(condition_of[pid], []).append(float(np.mean(vals)))
    return by


def _activity_summary(study: Study, activity: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each activity measure per task, described per condition."""
    conditions = list(study.design.conditions)
    activity_summary = []
    for task in study.design.tasks:
        for measure in SUMMARISED_MEASURES:
            by_condition = {
                c: describe(
                    [
                        a[measure]
                        for a in activity
                        if a["task"] == task.id and a["condition"] == c and a[measure] is not None
                    ]
                )
                for c in conditions
            }
            activity_summary.append(
                {"task": task.id, "measure": measure, "by_condition": by_condition}
            )
    return activity_summary


def plot_items(report: dict[str, Any], out: Path) -> list[Path]:
    """One panel per item (participants' answers per task, raters' EQ): a box per condition
    with every answer as a dot. Written as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    import numpy as np

    items = report["items"]
    if not items:
        return []
    conditions = report["conditions"]
    columns = min(5, len(items))
    rows = math.ceil(len(items) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    colours = ["#2b7bb9", "#b9652b", "#5a9e4b"]
    for ax, item in zip(axes.flat, items, strict=False):
        data = [item["by_condition"][c]["values"] for c in conditions]
        ax.boxplot(data, widths=0.5, showfliers=False)
        for i, values in enumerate(data, start=1):
            jitter = rng.uniform(-0.12, 0.12, len(values))
            ax.scatter(
                np.full(len(values), i) + jitter,
                np.array(values) + rng.uniform(-0.08, 0.08, len(values)),
                s=12,
                alpha=0.7,
                color=colours[(i - 1) % len(colours)],
            )
        ax.set_xticks(range(1, len(conditions) + 1), conditions)
        points = ALL_ITEMS[item["item"]].points
        ax.set_ylim(0.5, points + 0.5)
        ax.set_yticks(range(1, points + 1))
        test = item["test"]
        label = f"{item['item']} ({item['task']})"
        if test:
            label += f"\np = {test['p']:.2g}"
        ax.set_title(label, fontsize=9)
    for ax in list(axes.flat)[len(items) :]:
        ax.axis("off")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in ("png", "svg"):
        path = out / f"items.{suffix}"
        with atomic.atomic_open(path) as handle:
            fig.savefig(handle, format=suffix, dpi=120)
        written.append(path)
    plt.close(fig)
    return written
