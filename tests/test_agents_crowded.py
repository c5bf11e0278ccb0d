"""The agents on projects with many review findings per category, and on the Caltech subset:
`duetml ask`, `advise` and a chat turn through a loopback server speaking Ollama's wire format
(the real `ollama` client over HTTP). Real photos, real features, a real trained model.

A real project can have dozens of flagged photos in one category; `duetml ask` used to die with
ZeroDivisionError once one category had more of them than its contact sheet had slots.
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import DEMO_DATA, demo_photos, invoke_duetml
from llm_fakes import FakeOllamaServer
from PIL import Image

from duetml.agents import sheets
from duetml.agents.attachments import category_attachments
from duetml.agents.budget import DEFAULT_BUDGET, Budget
from duetml.project import Project

COPIED = 14  # hat photos that get a re-encoded copy in hat: more than a sheet's 12 slots
MOVED = 5  # shoes photos filed under hat


def crowded_project(root: Path) -> Project:
    """The demo's 4 categories, all 25 photos each, with hat crowded by problems: 14 of its
    photos copied again (re-encoded at another size, as a second download would be) and 5
    shoes photos filed under hat."""
    project, _ = Project.init(root, goal="sort my wardrobe")
    for name in ("hat", "pants", "shoes", "t-shirt"):
        project.add_images(name, demo_photos(name))
    hat = project.category_dir("hat")
    for photo in demo_photos("hat", COPIED):
        with Image.open(photo) as image:
            smaller = image.convert("RGB").resize((image.width * 9 // 10, image.height * 9 // 10))
            smaller.save(hat / f"copy-{photo.stem}.jpg", "JPEG", quality=80)
    project.move_images([r.rel for r in project.images("train", "shoes")[:MOVED]], "hat")
    return project


@pytest.fixture(scope="session")
def _crowded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from duetml.training import train_project

    root = tmp_path_factory.mktemp("crowded") / "wardrobe"
    train_project(crowded_project(root))
    return root


@pytest.fixture
def crowded(_crowded_template: Path, tmp_path: Path) -> Project:
    root = tmp_path / "wardrobe"
    shutil.copytree(_crowded_template, root, symlinks=True)
    return Project.open(root)


def sent_images(server: FakeOllamaServer) -> list[Image.Image]:
    images: list[Image.Image] = []
    for encoded in server.chat_requests[-1].json["messages"][-1].get("images", []):
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        image.load()
        images.append(image)
    return images


# --- the crash --------------------------------------------------------------------------------


def test_a_category_with_more_flagged_photos_than_sheet_slots_gets_a_full_sheet(
    tmp_path: Path,
) -> None:
    """Before the fix: ZeroDivisionError in sheets.spread (called with 0 slots left)."""
    project, _ = Project.init(tmp_path / "p")
    project.add_images("hat", demo_photos("hat"))
    records = project.images("train", "hat")
    slots = DEFAULT_BUDGET.photos_per_category
    flagged = {r.rel: n for n, r in enumerate(records[: slots + 3], start=1)}
    attachments, without = category_attachments(
        project, [(1, "hat")], max_sheets=1, photo_numbers=flagged
    )
    assert without == [] and len(attachments) == 1
    assert attachments[0].numbers == list(range(1, slots + 1))  # the first flagged, in order
    # Categories sharing a sheet get a few slots each (2 here; 4 with Caltech's 100
    # categories): every photo of these 8 categories is flagged.
    shared, _ = Project.init(tmp_path / "shared")
    photos = sorted(DEMO_DATA.glob("*/*.jpg"))
    names = [(i, f"kind {i}") for i in range(1, 9)]
    for i, name in names:
        shared.add_images(name, photos[i * 5 : i * 5 + 5])
    flags = {r.rel: n for n, r in enumerate(shared.images("train"), start=1)}
    small = Budget(max_sheets=2, photos_per_overview_row=2, categories_per_overview=4)
    attachments, without = category_attachments(shared, names, 2, small, photo_numbers=flags)
    assert len(attachments) == 2 and without == []
    assert all(len(a.numbers) == 4 * 2 for a in attachments)  # 4 categories x 2 slots
    assert sheets.spread([1, 2, 3], 0) == [] and sheets.spread([1, 2, 3], -1) == []


def test_ask_on_a_crowded_project_sends_sheets_and_the_findings(
    ollama: FakeOllamaServer, crowded: Project
) -> None:
    from duetml.review import review_project

    review = review_project(crowded)
    in_hat = {p for f in review.findings for p in f.photos if p.startswith("train/hat/")}
    assert len(in_hat) > DEFAULT_BUDGET.photos_per_category, "the project is not crowded"
    ollama.queue_reply("Hat holds copies and a few shoes.")
    result = invoke_duetml("ask", "--about", "data", "-p", str(crowded.root))
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hat holds copies and a few shoes.\n"
    images = sent_images(ollama)
    assert len(images) == 4 and all(max(i.size) <= sheets.SHEET_MAX_SIDE for i in images)
    content = ollama.chat_requests[-1].json["messages"][-1]["content"]
    assert "data review" in content and "train/hat/" in content


def test_advise_and_a_chat_turn_on_a_crowded_project(
    ollama: FakeOllamaServer, crowded: Project
) -> None:
    ollama.queue_reply("Hat has copies of the same photos: keep one of each.")
    advice = invoke_duetml("advise", "-p", str(crowded.root))
    assert advice.exit_code == 0, advice.output
    assert advice.stdout.startswith("Hat has copies")
    assert len(sent_images(ollama)) >= 1
    ollama.queue_reply("Which hats will it see?")
    ollama.queue_reply("Look at the copies in hat first.")
    chat = invoke_duetml(
        "chat",
        "--interval",
        "600",
        "-p",
        str(crowded.root),
        input="An app that sorts my wardrobe\n/data\nexit\n",
    )
    assert chat.exit_code == 0, chat.output
    assert "assistant> Look at the copies in hat first." in chat.stdout
    assert len(sent_images(ollama)) == 4


def test_the_facts_state_each_finding_with_its_certainty(crowded: Project) -> None:
    from duetml.agents.facts import FactGatherer, number_photos, render_facts
    from duetml.review import review_project

    facts = FactGatherer(crowded).gather()
    numbers = number_photos(facts)
    text = render_facts(facts, numbers=numbers)
    block = text.split("data review found")[1].split("\nModel:")[0]
    listed = [line for line in block.splitlines() if line.startswith("- ")]
    assert len(listed) == len(facts["findings"]) == DEFAULT_BUDGET.findings
    kinds = {f["kind"] for f in facts["findings"]}
    assert "% sure" not in block  # no certainty the review does not state
    if "mislabel" in kinds:
        assert "- probably mislabelled (label quality 0." in block
    review = review_project(crowded)
    for finding in facts["findings"]:  # every photo of a finding, by its number
        assert finding["id"] in {f.id for f in review.findings}
        for rel in finding["photos"][: DEFAULT_BUDGET.photos_per_finding]:
            assert f"#{numbers.get(rel)} ({rel}" in block


def test_between_two_categories_is_a_question_not_a_photo_fix() -> None:
    from duetml.agents.facts import _finding_lines

    overlap: dict[str, Any] = {  # a finding as the facts carry it (plain JSON)
        "id": "0123456789",
        "kind": "overlap",
        "photos": [],
        "categories": ["shirt", "t-shirt"],
        "score": 0.8,
        "message": "The model confuses 'shirt' and 't-shirt' both ways (9 of 40 and 7 of 38 "
        "photos): do the two overlap by definition? Make each more distinct, or merge them if one "
        "category serves your goal.",
        "suggestion": None,
        "details": {},
    }
    lines = _finding_lines([overlap], lambda rel: f"#1 ({rel})", DEFAULT_BUDGET)
    assert lines[1].startswith("- between two categories ('shirt' and 't-shirt'): ")
    assert "A question for the user about how the categories are defined" in lines[1]
    assert "#" not in lines[1] and "Suggested" not in lines[1]


def test_a_proposal_touching_several_photos_lists_each_in_the_chat(
    ollama: FakeOllamaServer, crowded: Project
) -> None:
    import json

    block = json.dumps(
        {"action": "move", "photos": ["#1", "#2", "#3"], "to": "shoes", "reason": "shoes"}
    )
    ollama.queue_reply("Which hats will it see?")
    ollama.queue_reply(f"Three look like shoes.\n\n```json\n{block}\n```")
    chat = invoke_duetml(
        "chat",
        "--interval",
        "600",
        "-p",
        str(crowded.root),
        input="An app that sorts my wardrobe\n/data\nexit\n",
    )
    assert chat.exit_code == 0, chat.output
    out = chat.stdout
    assert "assistant> Three look like shoes." in out
    line = next(x for x in out.splitlines() if x.startswith("  [1] Move 3 photos"))
    listed = out.split(line)[1].splitlines()[1:4]
    assert all(x.startswith("      - train/") for x in listed) and len(set(listed)) == 3


# --- the Caltech subset (100 categories, 5,233 photos) ------------------------------------------


@pytest.fixture
def caltech(trained_caltech: Path, tmp_path: Path) -> Project:
    # A private copy: ask and advise write the conversation, which the shared project must
    # not carry into the next test that opens it (the workspace's page showed it).
    root = tmp_path / "caltech"
    shutil.copytree(trained_caltech, root, symlinks=True)
    return Project.open(root)  # ask and advise only read the data


@pytest.mark.slow
def test_ask_and_advise_on_the_caltech_subset(ollama: FakeOllamaServer, caltech: Project) -> None:
    ollama.queue_reply("Some categories hold drawings.")
    asked = invoke_duetml("ask", "--about", "data", "-p", str(caltech.root))
    assert asked.exit_code == 0, asked.output
    assert asked.stdout == "Some categories hold drawings.\n"
    images = sent_images(ollama)
    assert len(images) == DEFAULT_BUDGET.max_sheets  # 100 categories share the six sheets
    content = ollama.chat_requests[-1].json["messages"][-1]["content"]
    assert "100 categories" in content
    ollama.queue_reply("Faces and Faces_easy look alike.")
    advice = invoke_duetml("advise", "-p", str(caltech.root))
    assert advice.exit_code == 0, advice.output
    assert advice.stdout.startswith("Faces and Faces_easy")
