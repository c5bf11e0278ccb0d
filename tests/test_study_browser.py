"""The study's pages in headless Chromium: a participant's bar, consent, task and
questionnaire on the real page (baseline: no assistant), and the raters' page. Screenshots go
to $TMPDIR/duetml-study-shots/ (study-*.png) for a person to look at."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from helpers import demo_photos, free_port
from web_helpers import LiveServer

from duetml.project import Project
from duetml.study.design import Study, init_study
from duetml.study.items import UQ
from duetml.study.session import ParticipantSession
from duetml.web.routes_study import create_rating_app, create_session_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = Path(tempfile.gettempdir()) / "duetml-study-shots"
TIMEOUT = 20_000


def open_page(browser: Any, url: str, errors: list[str]) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # "End this task now?": yes
    page.goto(url)
    return context, page


def participant(study: Study, condition: str) -> str:
    return next(p.id for p in study.design.participants if p.condition == condition)


def test_a_participant_goes_through_consent_task_and_questionnaire(
    browser: Any,
    tmp_path: Path,
) -> None:
    study = init_study(tmp_path / "study", 2, seed=3)
    pid = participant(study, "agents")
    port = free_port()
    errors: list[str] = []
    SHOTS.mkdir(exist_ok=True)
    with LiveServer(create_session_app(study.root, pid, port=port), port) as server:
        context, page = open_page(browser, server.url, errors)
        page.get_by_role("button", name="I agree and start").wait_for()
        assert "Withdraw" in page.locator(".study-card").inner_text()
        page.screenshot(path=str(SHOTS / "study-consent.png"))
        page.get_by_role("button", name="I agree and start").click()
        page.get_by_role("button", name="Start").click()
        page.locator("#study-timer").wait_for()
        assert page.locator(".study-overlay").is_hidden()
        Project.open(study.task_project(pid, "practice")).add_images("hat", demo_photos("hat", 3))
        page.wait_for_selector("body[data-ready=true]")
        page.locator("article.category").first.wait_for()
        page.screenshot(path=str(SHOTS / "study-task.png"))
        page.locator("#study-done").click()  # practice: the next task is another project
        page.get_by_role("button", name="Start").wait_for()
        page.get_by_role("button", name="Start").click()
        page.locator("#study-done").click()
        page.locator("#study-questionnaire").wait_for()
        for item in (*(i.id for i in UQ.items), "UMUX1", "UMUX2"):
            page.locator(f"input[name={item}][value='4']").check()
        page.screenshot(path=str(SHOTS / "study-questionnaire.png"), full_page=True)
        page.get_by_role("button", name="Send my answers").click()
        page.get_by_role("heading", name="Task 2: things by how they are used").wait_for()
        context.close()
    answers = ParticipantSession(study, pid).record()["tasks"]["free"]["answers"]
    assert answers["UQ3"] == 4 and answers["UMUX2"] == 4
    assert not errors, errors


def test_a_baseline_participant_sees_no_assistant(browser: Any, tmp_path: Path) -> None:
    study = init_study(tmp_path / "study", 2, seed=3)
    pid = participant(study, "baseline")
    ParticipantSession(study, pid).consent()
    ParticipantSession(study, pid).start()
    port = free_port()
    errors: list[str] = []
    with LiveServer(create_session_app(study.root, pid, port=port), port) as server:
        context, page = open_page(browser, server.url, errors)
        page.wait_for_selector("body[data-ready=true]")
        page.locator("#study-timer").wait_for()
        assert page.locator("#chat-input").count() == 0
        assert page.locator("[data-ask]").count() == 0
        assert page.locator("#assistant").count() == 0
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "study-baseline.png"))
        context.close()
    assert not errors, errors


def test_the_raters_page(browser: Any, tmp_path: Path) -> None:
    study = init_study(tmp_path / "study", 4, seed=5)
    for n, p in enumerate(study.design.participants):
        session = ParticipantSession(study, p.id)
        session.consent()
        for task in study.design.tasks:
            session.start()
            if task.rated:
                project = Project.open(study.task_project(p.id, task.id))
                project.add_images("worn on the head", demo_photos("hat", 4, skip=n))
                project.add_images("worn on the feet", demo_photos("shoes", 3, skip=n))
            session.finish()
            if not task.practice:
                answers = {"UMUX1": 5, "UMUX2": 5}
                if p.condition == "agents":
                    answers |= {i.id: 4 for i in UQ.items}
                session.answer(answers)
    port = free_port()
    errors: list[str] = []
    with LiveServer(create_rating_app(study.root, port=port), port) as server:
        context, page = open_page(browser, server.url, errors)
        page.fill("#rater", "R1")
        page.get_by_role("button", name="Start rating").click()
        first = page.locator("section.rate-entry").first
        first.wait_for()
        assert page.locator("section.rate-entry").count() == 4
        first.locator("img").first.evaluate(
            "(img) => img.complete || new Promise((ok) => img.addEventListener('load', ok))"
        )
        for n in range(1, 6):
            first.locator(f"input[name=EQ{n}][value='{n % 5 + 1}']").check()
        first.get_by_role("button", name="Save").click()
        page.get_by_text("1 of 4 rated, as R1.").wait_for()
        page.screenshot(path=str(SHOTS / "study-rating.png"))
        text = page.locator("body").inner_text()
        assert not any(p.id in text for p in study.design.participants)
        context.close()
    saved = (study.ratings_dir / "R1.json").read_text()
    assert '"EQ1": 2' in saved
    assert not errors, errors


def test_the_questionnaire_comes_when_the_time_is_up(browser: Any, tmp_path: Path) -> None:
    short = tmp_path / "quick.toml"
    short.write_text('title = "A quick task"\nminutes = 0.05\ntext = "Sort two photos."\n')
    study = init_study(tmp_path / "study", 2, seed=3, task_files=[short])
    pid = participant(study, "baseline")
    port = free_port()
    errors: list[str] = []
    with LiveServer(create_session_app(study.root, pid, port=port), port) as server:
        context, page = open_page(browser, server.url, errors)
        page.get_by_role("button", name="I agree and start").click()
        page.get_by_role("button", name="Start").click()
        page.locator("#study-timer").wait_for()
        # Three seconds later the server ends the task and the page asks its questions.
        page.locator("#study-questionnaire").wait_for()
        assert page.locator(".study-item").count() == 2  # baseline: UMUX-Lite only
        context.close()
    done = ParticipantSession(study, pid).record()["tasks"]["quick"]
    assert done["ended_by"] == "time"
    assert done["ended"] - done["started"] == pytest.approx(3.0)
    assert not errors, errors
