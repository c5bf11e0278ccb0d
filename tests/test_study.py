"""The study core: the design (balanced, seeded, recorded), a participant's session (consent,
timed tasks, pauses, questionnaires, withdrawal), blind ratings and the report's statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import demo_photos, run_duetml
from scipy import stats

from duetml.errors import DuetmlError
from duetml.project import Project
from duetml.study.design import Study, balanced_conditions, init_study
from duetml.study.items import EQ, UMUX, UQ
from duetml.study.ratings import blind_code, queue_for, save_rating
from duetml.study.report import build_report, mann_whitney
from duetml.study.session import ParticipantSession


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("count", [2, 7, 8, 12, 13])
def test_conditions_are_balanced_and_the_seed_decides_the_order(count: int) -> None:
    slots = balanced_conditions(count, ("agents", "baseline"), seed=5)
    assert abs(slots.count("agents") - slots.count("baseline")) <= 1
    assert slots == balanced_conditions(count, ("agents", "baseline"), seed=5)
    orders = {tuple(balanced_conditions(count, ("agents", "baseline"), s)) for s in range(20)}
    assert len(orders) > 1  # the seed matters


def test_init_records_the_design_and_tags_every_event(tmp_path: Path) -> None:
    study = init_study(tmp_path / "s", 8, seed=11)
    saved = json.loads((tmp_path / "s" / "study.json").read_text())
    assert saved["seed"] == 11
    assert [p["condition"] for p in saved["participants"]].count("agents") == 4
    assert [t["id"] for t in saved["tasks"]] == ["practice", "free", "requirement"]
    assert (tmp_path / "s" / "tasks" / "requirement.toml").is_file()
    project = Project.open(study.task_project("P03", "free"))
    project.add_category("cats")
    events = project.log.recent()
    assert [e["event"] for e in events] == ["init", "add_category"]
    assert all(e["participant"] == "P03" and e["task"] == "free" for e in events)
    with pytest.raises(DuetmlError, match="already a study"):
        init_study(tmp_path / "s", 8)
    with pytest.raises(DuetmlError, match="P07"):
        study.participant_dir("../P01")


def test_a_session_runs_timed_tasks_pauses_and_asks_the_questionnaires(tmp_path: Path) -> None:
    study = init_study(tmp_path / "s", 2, seed=1)
    agents = next(p.id for p in study.design.participants if p.condition == "agents")
    clock = Clock()
    session = ParticipantSession(study, agents, clock)
    assert session.state()["phase"] == "consent" and "Withdraw" in session.state()["consent"]
    with pytest.raises(DuetmlError, match="agreed"):
        session.start()
    session.consent()
    assert session.start()["task"]["id"] == "practice"
    clock.now += 60
    session.pause()
    clock.now += 600  # a pause does not count
    assert session.state()["task"]["used_s"] == 60
    session.resume()
    clock.now += 15 * 60  # the practice's 15 minutes are up: it ends by itself, no questions
    state = session.state()
    assert state["phase"] == "ready" and state["task"]["id"] == "free"
    practice = session.record()["tasks"]["practice"]
    assert practice["ended_by"] == "time" and session.used_seconds(practice, clock.now) == 900
    session.start()
    clock.now += 200
    state = session.finish()
    assert state["phase"] == "questionnaire"
    assert [q["id"] for q in state["questionnaires"]] == ["UQ", "UMUX"]
    with pytest.raises(DuetmlError, match="UQ1"):
        session.answer({"UMUX1": 5, "UMUX2": 5})
    with pytest.raises(DuetmlError, match="from 1 to 7"):
        session.answer({**{i.id: 3 for i in UQ.items}, "UMUX1": 9, "UMUX2": 1})
    session.answer({**{i.id: 4 for i in UQ.items}, "UMUX1": 6, "UMUX2": 7})
    assert session.state()["task"]["id"] == "requirement"
    events = [e["event"] for e in Project.open(study.task_project(agents, "free")).log.recent()]
    assert events == ["init", "study_task_started", "study_task_ended", "study_answers"]
    baseline = next(p.id for p in study.design.participants if p.condition == "baseline")
    other = ParticipantSession(study, baseline, clock)
    other.consent()
    other.start()
    other.finish()
    other.start()
    other.finish()
    assert [q["id"] for q in other.state()["questionnaires"]] == ["UMUX"]  # no UQ in baseline
    other.withdraw()
    assert other.state()["phase"] == "withdrawn"
    with pytest.raises(DuetmlError, match="withdrawn"):
        other.answer({"UMUX1": 1, "UMUX2": 1})


def _finish_all(study: Study, pid: str, answers: dict[str, int]) -> None:
    session = ParticipantSession(study, pid)
    session.consent()
    for task in study.design.tasks:
        session.start()
        session.finish()
        if not task.practice:
            session.answer(
                {
                    k: v
                    for k, v in answers.items()
                    if k.startswith("UMUX") or session.condition == "agents"
                }
            )


def test_the_report_equals_scipy_on_the_same_numbers(tmp_path: Path) -> None:
    study = init_study(tmp_path / "s", 8, seed=2)
    umux2 = {}
    for n, p in enumerate(study.design.participants):
        value = 3 + n % 4 + (1 if p.condition == "agents" else 0)
        umux2[p.id] = value
        _finish_all(study, p.id, {**{i.id: 4 for i in UQ.items}, "UMUX1": 5, "UMUX2": value})
        Project.open(study.task_project(p.id, "requirement")).add_images(
            "hats", demo_photos("hat", 2)
        )
    for rater in ("R1", "R2", "R3"):
        for n, rated in enumerate(queue_for(study, rater)):
            good = 1 if study.design.participant(rated.participant).condition == "agents" else 0
            save_rating(
                study,
                rater,
                rated.code,
                {i.id: min(5, 2 + good + (n + len(rater)) % 3) for i in EQ.items},
            )
    report = build_report(study)
    item = next(i for i in report["items"] if i["item"] == "UMUX2" and i["task"] == "free")
    x = [umux2[p] for p in report["participants"]["agents"]]
    y = [umux2[p] for p in report["participants"]["baseline"]]
    assert sorted(item["by_condition"]["agents"]["values"]) == sorted(x)
    expected = stats.mannwhitneyu(
        x, y, alternative="two-sided", method=stats.PermutationMethod(n_resamples=70)
    )
    assert item["test"]["U"] == expected.statistic
    assert item["test"]["p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert item["test"]["method"] == "exact permutation"
    assert item["test"]["rank_biserial"] == pytest.approx(2 * expected.statistic / 16 - 1)
    # Without ties the exact distribution is scipy's "exact".
    exact = mann_whitney([1, 2, 3], [4, 5, 6, 7])
    assert exact is not None and exact["p"] == pytest.approx(
        stats.mannwhitneyu([1, 2, 3], [4, 5, 6, 7], method="exact").pvalue
    )
    eq1 = next(i for i in report["items"] if i["item"] == "EQ1")
    assert eq1["by_condition"]["agents"]["n"] == 12  # 4 participants x 3 raters
    assert report["agreement"]["EQ1"]["raters"] == 3
    assert report["agreement"]["EQ1"]["alpha"] is not None
    activity = next(a for a in report["activity"] if a["task"] == "requirement")
    assert activity["operations"] == 1  # the add


def test_ratings_are_blind_and_shuffled_per_rater(tmp_path: Path) -> None:
    study = init_study(tmp_path / "s", 8, seed=4)
    for p in study.design.participants:
        _finish_all(study, p.id, {**{i.id: 3 for i in UQ.items}, "UMUX1": 4, "UMUX2": 4})
    one = [r.code for r in queue_for(study, "R1")]
    two = [r.code for r in queue_for(study, "R2")]
    assert sorted(one) == sorted(two) and one != two and len(one) == 8
    assert one == [r.code for r in queue_for(study, "R1")]
    assert all(p.id not in code for code in one for p in study.design.participants)
    assert blind_code(study, "P01", "requirement") in one
    with pytest.raises(DuetmlError, match="EQ1"):
        save_rating(study, "R1", one[0], {"EQ1": 9})
    with pytest.raises(DuetmlError, match="rater id"):
        save_rating(study, "../x", one[0], {i.id: 3 for i in EQ.items})


@pytest.mark.slow  # over 1.5 s here (subprocesses or a browser)
def test_the_cli_makes_reports_and_replays(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    made = run_duetml("study", "init", str(folder), "--participants", "4", "--seed", "9")
    assert made.returncode == 0, made.stderr
    assert "2 agents, 2 baseline" in made.stdout
    study = Study.open(folder)
    _finish_all(study, "P01", {**{i.id: 4 for i in UQ.items}, "UMUX1": 5, "UMUX2": 6})
    status = json.loads(run_duetml("study", "status", str(folder), "--json").stdout)
    assert status[0]["phase"] == "done" and status[0]["answered"] == 2
    assert status[1]["phase"] == "consent" and status[1]["tasks_done"] == 0
    report = run_duetml("study", "report", str(folder))
    assert report.returncode == 0, report.stderr
    assert "UMUX2" in report.stdout and (folder / "report" / "items.svg").is_file()
    replay = run_duetml("study", "replay", str(folder), "P01")
    assert "study_task_started" in replay.stdout and "practice" in replay.stdout
    page = tmp_path / "P01.html"
    assert run_duetml("study", "replay", str(folder), "P01", "--html", str(page)).returncode == 0
    assert "study_answers" in page.read_text() and "<table>" in page.read_text()
    paused = run_duetml("study", "session", str(folder), "P02", "pause")
    assert paused.returncode != 0 and "agreed" in paused.stderr  # P02 has not consented
    withdrawn = run_duetml("study", "session", str(folder), "P02", "withdraw")
    assert "P02: withdrawn" in withdrawn.stdout
    bad = run_duetml("study", "replay", str(folder), "P99")
    assert bad.returncode != 0 and "no participant" in bad.stderr
    assert {i.id for i in UMUX.items} == {"UMUX1", "UMUX2"}
