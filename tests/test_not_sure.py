""" "Not sure": a photo unlike every category the model knows gets no confident answer.

The foreign photos are real: the demo's shoes, against a model trained without shoes."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from helpers import demo_photos, run_duetml

from duetml import abstention
from duetml.prediction import load_model, predict_sources
from duetml.project import Project
from duetml.training import train_project


@pytest.fixture
def without_shoes(trained_demo: Path) -> Project:
    """The demo project with its shoes removed (train and test), trained again."""
    project = Project.open(trained_demo)
    project.remove_category("shoes")
    assert "shoes" not in project.category_names("test")
    train_project(project)
    return project


def _not_sure_share(project: Project, photos: list[Path], abstain: bool = True) -> float:
    predictions = predict_sources(project, photos, [str(p) for p in photos], abstain=abstain)
    assert all(p.ranking for p in predictions)
    return float(np.mean([p.not_sure for p in predictions]))


def test_the_rule_comes_from_the_project_and_is_stored_with_the_model(trained_demo: Path) -> None:
    model = load_model(Project.open(trained_demo))
    rule = abstention.AbstentionRule.from_dict(model.meta["not_sure"])
    assert rule is not None and rule.reference_photos == 80 and rule.neighbours == 5
    reference = model.extras[abstention.REFERENCE_EXTRA]
    assert reference.shape == (80, 1280) and reference.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)
    # Unit vectors, so the distances lie in [0, 2]; the threshold is one of the training
    # photos' own leave-one-out distances (the 95% quantile), not a constant.
    assert 0.0 < rule.distance_threshold < 2.0
    held_out = abstention.neighbour_distances(reference, reference, 5, leave_out=np.arange(80))
    assert np.mean(held_out > rule.distance_threshold) == pytest.approx(0.05, abs=0.02)


@pytest.mark.slow
def test_foreign_photos_get_not_sure_and_own_held_out_photos_do_not(
    without_shoes: Project,
) -> None:
    shoes = demo_photos("shoes")
    own = [r.path for r in without_shoes.images("test")]
    assert len(shoes) == 25 and len(own) == 15
    assert _not_sure_share(without_shoes, shoes) >= 0.8
    assert _not_sure_share(without_shoes, own) <= 0.2
    # --no-abstain: the bare argmax, never "not sure".
    assert _not_sure_share(without_shoes, shoes, abstain=False) == 0.0


def _duetml(*args: str) -> str:
    """What the real CLI prints, run as a person runs it (it must succeed)."""
    result = run_duetml(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_cli_says_not_sure_with_the_closest_guess(without_shoes: Project) -> None:
    shoe = str(demo_photos("shoes")[0])
    root = str(without_shoes.root)
    text = _duetml("predict", shoe, "-p", root)
    assert f"{shoe}: not sure (closest: " in text
    assert "unlike the training photos of every category" in text
    rows = json.loads(_duetml("predict", shoe, "-p", root, "--json"))
    assert rows[0]["not_sure"] is True and rows[0]["reason"] == abstention.UNLIKE
    assert rows[0]["category"] == rows[0]["top"][0]["category"]  # the closest guess
    assert abs(sum(t["probability"] for t in rows[0]["top"]) - 1.0) < 1e-3
    plain = json.loads(_duetml("predict", shoe, "-p", root, "--json", "--no-abstain"))[0]
    assert plain["not_sure"] is False and plain["reason"] is None
    assert plain["category"] == rows[0]["category"]
    own = str(without_shoes.images("test", "hat")[0].path)
    line = _duetml("predict", own, "-p", root)
    assert "not sure" not in line and ": hat " in line


def test_the_log_tells_the_agents_it_was_not_sure(without_shoes: Project) -> None:
    shoe = demo_photos("shoes")[0]
    predict_sources(without_shoes, [shoe], [shoe.name])
    entry = [e for e in without_shoes.log.recent() if e["event"] == "predict"][-1]
    assert entry["results"][0].startswith("not sure (closest: ")
    # What the agents read: the log of operations, and how to take a not-sure answer.
    from duetml.agents.history import summarize_events
    from duetml.agents.prompts import PASSIVE_SYSTEM, PROACTIVE_SYSTEM

    assert "results=[not sure (closest: " in summarize_events(without_shoes.log.recent())
    for system in (PASSIVE_SYSTEM, PROACTIVE_SYSTEM):
        assert '"not sure (closest: X NN%)" means the model abstained' in system


def test_probability_floor_is_where_held_out_answers_were_mostly_wrong() -> None:
    # Ten out-of-fold answers (three categories): the three least confident were wrong.
    confidence = np.array([0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97])
    rest = (1 - confidence) / 2
    probabilities = np.stack([confidence, rest, rest], axis=1)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    # At and below 0.7, 2 of 5 were right (< half); at and below 0.8, 3 of 6 (not < half).
    assert abstention.probability_floor(probabilities, y) == pytest.approx(0.7)
    assert abstention.probability_floor(probabilities, np.zeros(10, dtype=int)) == 0.0


def test_models_without_a_rule_still_predict(trained_demo: Path) -> None:
    """A model trained by an older duetml has no rule: it answers as before."""
    project = Project.open(trained_demo)
    model = load_model(project)
    del model.meta["not_sure"]
    model.extras.pop(abstention.REFERENCE_EXTRA)
    photo = demo_photos("hat")[0]
    (prediction,) = predict_sources(project, [photo], ["hat"], model=model)
    assert prediction.ranking and not prediction.not_sure


@pytest.mark.slow
def test_eval_reports_not_sure_apart_and_keeps_its_figures(without_shoes: Project) -> None:
    """Shoes filed as hats in the test set: eval's accuracy still counts the closest guess
    (unchanged by abstention); the separate figure says predict would not be sure of them."""
    from duetml.evaluation import evaluate_project

    without_shoes.add_images("hat", demo_photos("shoes", 10), split="test")
    report = evaluate_project(without_shoes)
    assert report.source == "test set" and report.not_sure is not None
    assert report.not_sure["of"] == 25
    assert report.not_sure["photos"] >= 8  # the 10 shoes, and at most a few of the 15 others
    guesses = {m["image"] for m in report.mistakes}
    assert report.accuracy == pytest.approx(1 - len(guesses) / 25)
    assert msgspec.to_builtins(report)["not_sure"] == report.not_sure
    line = _duetml("eval", "-p", str(without_shoes.root)).splitlines()[1]
    assert line.startswith('`predict` would answer "not sure" on ')


@pytest.mark.slow
def test_the_page_api_and_its_live_log_carry_not_sure(without_shoes: Project) -> None:
    """/api/predict (the page's cards and the live camera) answers with `not_sure` and
    `reason`, and the live camera's summary in the log says "not sure" too."""
    from litestar.testing import TestClient

    from duetml.web import create_app

    shoe = demo_photos("shoes")[0]
    files = [("files", (shoe.name, shoe.read_bytes(), "image/jpeg"))]
    app = create_app(without_shoes.root, baseline=True, port=8765)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        (card,) = client.post("/api/predict", files=files).json()["predictions"]
        assert card["not_sure"] is True and card["reason"] == abstention.UNLIKE
        (frame,) = client.post("/api/predict?live=true", files=files).json()["predictions"]
        assert frame["not_sure"] is True
    live = [e for e in without_shoes.log.recent() if e["event"] == "predict_live"][-1]
    assert live["latest"].startswith("not sure (closest: ")
