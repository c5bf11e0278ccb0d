"""What the agents see: sheets use every slot, categories by relevance, numbered photos.

Real demo photos and real sheets; the sheet drawer is wrapped (not replaced) to record which
photos land on which sheet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest
from agent_fakes import FakeProvider
from helpers import DEMO_DATA

from duetml.agents import AgentSession, attachments, sheets
from duetml.agents.context import ContextBuilder, rank_categories
from duetml.agents.facts import Evaluation, Facts, render_facts
from duetml.project import Project

DEMO_PHOTOS = sorted(DEMO_DATA.glob("*/*.jpg"))


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], list[str]]]:
    """Every sheet drawn during the test: (title, [captions], [photo names])."""
    recorded: list[tuple[str, list[str], list[str]]] = []
    real = sheets.draw_sheet

    def spy(title: str, tiles: Sequence[sheets.Tile]) -> bytes | None:
        recorded.append((title, [t.caption for t in tiles], [t.path.name for t in tiles]))
        return real(title, tiles)

    monkeypatch.setattr(sheets, "draw_sheet", spy)
    attachments._SHEET_CACHE.clear()
    return recorded


def project_with(tmp_path: Path, categories: int, per_category: int) -> Project:
    project, _ = Project.init(tmp_path / "p")
    for index in range(categories):
        start = index * per_category
        project.add_images(f"kind {index:02d}", DEMO_PHOTOS[start : start + per_category])
    return project


def test_seven_categories_use_all_six_sheets_and_every_photo(
    tmp_path: Path, drawn: list[tuple[str, list[str], list[str]]]
) -> None:
    project = project_with(tmp_path, categories=7, per_category=4)
    context = ContextBuilder(project).build("data")
    assert len(context.images) == 6
    shown = [name for _, _, names in drawn for name in names]
    assert len(shown) == 28 and len(set(shown)) == 28  # all 28 photos, none twice
    labels = " | ".join(image.label or "" for image in context.images)
    for number in range(1, 8):
        assert re.search(rf"\b{number}\b", labels), labels


@pytest.mark.slow
def test_twenty_categories_share_the_sheets_evenly(
    tmp_path: Path, drawn: list[tuple[str, list[str], list[str]]]
) -> None:
    project = project_with(tmp_path, categories=20, per_category=4)
    context = ContextBuilder(project).build("data")
    assert len(context.images) == 6
    per_sheet = sorted(len(names) for _, _, names in drawn)
    assert per_sheet[-1] - per_sheet[0] <= 4  # 3 or 4 categories a sheet, 4 photos each
    assert sum(per_sheet) == 80


@pytest.mark.slow
def test_overview_titles_name_the_categories_on_them(
    tmp_path: Path, drawn: list[tuple[str, list[str], list[str]]]
) -> None:
    project = project_with(tmp_path, categories=20, per_category=4)
    names = {i: c.name for i, c in enumerate(project.categories(), start=1)}
    ContextBuilder(project).build("data")
    assert drawn
    for title, captions, _ in drawn:
        on_sheet = {int(c.split(".")[0]) for c in captions}
        listed = {int(n) for n in re.findall(r"\d+", title.split(", a few")[0])}
        assert on_sheet == listed, (title, captions)
        for caption in captions:
            number, name = caption.split(". ", 1)
            assert names[int(number)] == name


@pytest.mark.slow
def test_relevant_categories_get_sheets_even_past_the_first_sixty(
    tmp_path: Path, drawn: list[tuple[str, list[str], list[str]]]
) -> None:
    project, _ = Project.init(tmp_path / "p")
    for index in range(70):
        project.add_images(f"kind {index:02d}", DEMO_PHOTOS[index : index + 1] * 1)
    # The user just worked on the last category: it must be looked at, whatever its number.
    project.add_images("kind 69", DEMO_PHOTOS[75:79])
    context = ContextBuilder(project).build("data")
    facts_text = context.text
    for index in range(70):
        assert f"kind {index:02d}" in facts_text  # every name is listed
    assert len(context.images) == 6
    first_sheet = drawn[0]
    assert any(caption.endswith("kind 69") for caption in first_sheet[1]), first_sheet
    assert "kind 69" in (context.images[0].label or "") or "70" in (context.images[0].label or "")


def test_ranking_is_by_relevance_not_by_name() -> None:
    facts = {
        "categories": [
            {"name": "apple", "images": 40},
            {"name": "banana", "images": 40},
            {"name": "cherry", "images": 3},
            {"name": "date", "images": 40},
            {"name": "elder", "images": 40},
        ],
        "evaluation": Evaluation(
            "cross-validation", 0.9, confused_pairs=[("date", "elder", 4, 0.1)]
        ),
        "findings": [
            {"kind": "mislabel", "photos": ["train/banana/x.jpg"], "categories": ["banana"]}
        ],
    }
    order = [
        name
        for _, name in rank_categories(cast(Facts, facts), [{"event": "add_images", "to": "x"}])
    ]
    assert set(order[:3]) == {"date", "elder", "banana"}
    assert order[3] == "cherry" and order[4] == "apple"


@pytest.mark.slow
def test_no_text_points_at_sheet_numbers_that_are_not_attached(trained_project: Project) -> None:
    builder = ContextBuilder(trained_project)
    text_only = builder.build("results", vision=False)
    assert "on the sheet" not in text_only.text and "on image" not in text_only.text
    assert re.search(r"#1 \(train/|#1 \(test/", text_only.text)
    with_images = builder.build("results")
    assert "Image 1: a sheet of the photos the facts name" in with_images.text
    assert re.search(r"#1 \([^)]*, on image 1\)", with_images.text)


def test_findings_enter_the_facts_with_photo_numbers() -> None:
    facts = {
        "categories": [{"name": "hat", "images": 20}, {"name": "shoes", "images": 20}],
        "images": 40,
        "test_images": 0,
        "warnings": [],
        "duplicates": {"groups": 0, "examples": []},
        "model": None,
        "findings": [
            {
                "id": "abc",
                "kind": "mislabel",
                "photos": ["train/hat/a.jpg", "train/hat/b.jpg"],
                "categories": ["hat"],
                "score": 0.9,
                "message": "2 photos in hat look like shoes.",
                "suggestion": {"label": "Move 2 photos to shoes"},
            }
        ],
    }
    text = render_facts(cast(Facts, facts), shown={2: 3})  # a partial Facts
    assert "- probably mislabelled: 2 photos in hat look like shoes." in text
    assert "#1 (train/hat/a.jpg)" in text and "#2 (train/hat/b.jpg, on image 3)" in text
    assert "Suggested: Move 2 photos to shoes." in text


@pytest.mark.slow
def test_session_request_carries_the_numbers_of_the_photos(trained_project: Project) -> None:
    passive = FakeProvider()
    session = AgentSession(trained_project, passive=passive, proactive=FakeProvider())
    "".join(session.ask_stream("", about="results"))
    context = session.builder.build("results")
    assert context.photos and all(rel.count("/") == 2 for rel in context.photos.values())
