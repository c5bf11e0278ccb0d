"""The data review on real demo photos with planted problems (issue 9): mislabels, copies,
leaks, and that every fix is one undoable operation and every dismissal sticks."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import run_duetml
from PIL import Image

from duetml.errors import DuetmlError, NotFoundError
from duetml.project import Project
from duetml.review import (
    Finding,
    Suggestion,
    apply_finding,
    apply_suggestion,
    dismiss_findings,
    review_project,
)
from duetml.training import train_project

SHOES_IN_HAT = 4


def _plant(root: Path) -> dict[str, object]:
    """Shoes filed under hat, a resized PNG copy of a hat in pants, a re-encoded copy in test."""
    project = Project.open(root)
    shoes = project.images("train", "shoes")[:SHOES_IN_HAT]
    moved = project.move_images([r.rel for r in shoes], "hat")
    original = project.images("train", "hat")[0]
    photo = Image.open(original.path).convert("RGB")
    png = io.BytesIO()
    photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)).save(png, "PNG")
    png_rel = project.add_image_bytes("pants", [("copy.png", png.getvalue())]).added[0]
    jpeg = io.BytesIO()
    photo.save(jpeg, "JPEG", quality=70)
    test_rel = project.add_image_bytes("hat", [("copy.jpg", jpeg.getvalue())], split="test").added[
        0
    ]
    return {"shoes": set(moved), "original": original.rel, "png": png_rel, "test_copy": test_rel}


@pytest.fixture(scope="module")
def _planted_template(
    _trained_demo_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, object]]:
    root = tmp_path_factory.mktemp("planted") / "demo"
    shutil.copytree(_trained_demo_template, root, symlinks=True)
    planted = _plant(root)
    train_project(Project.open(root))
    return root, planted


@pytest.fixture
def planted(
    _planted_template: tuple[Path, dict[str, object]], tmp_path: Path
) -> tuple[Project, dict[str, object]]:
    root = tmp_path / "demo"
    shutil.copytree(_planted_template[0], root, symlinks=True)
    return Project.open(root), _planted_template[1]


def _mislabel_to_shoes(findings: tuple[Finding, ...]) -> Finding:
    hits = [
        f
        for f in findings
        if f.kind == "mislabel" and f.suggestion is not None and f.suggestion.to == "shoes"
    ]
    assert len(hits) == 1, [f.as_dict() for f in findings]
    return hits[0]


@pytest.mark.slow
def test_shoes_filed_under_hat_are_flagged_with_the_suggestion_shoes(planted) -> None:
    project, facts = planted
    review = review_project(project)
    finding = _mislabel_to_shoes(review.findings)
    assert set(finding.photos) == facts["shoes"]
    assert finding.categories == ("hat", "shoes")
    assert finding.suggestion is not None and finding.suggestion.action == "move"
    assert finding.details["suggested"] == "shoes"
    # A project of 100 photos with 4 planted mislabels is not drowned in false alarms.
    flagged = {p for f in review.findings if f.kind == "mislabel" for p in f.photos}
    assert len(flagged) <= SHOES_IN_HAT + 4
    # The findings are sorted by importance and each photo finding names project photos.
    scores = [f.score for f in review.findings]
    assert scores == sorted(scores, reverse=True)
    for f in review.findings:
        for rel in f.photos:
            assert (project.root / rel).is_file()


@pytest.mark.slow
def test_mislabels_are_reported_with_and_without_a_test_set(planted) -> None:
    project, facts = planted
    assert project.images("test")  # the demo holds a test set
    assert set(_mislabel_to_shoes(review_project(project).findings).photos) == facts["shoes"]
    shutil.rmtree(project.root / "test")
    train_project(project)
    assert set(_mislabel_to_shoes(review_project(project).findings).photos) == facts["shoes"]


def test_resized_png_copy_in_another_category_is_a_near_duplicate(planted) -> None:
    project, facts = planted
    review = review_project(project)
    copies = [
        f
        for f in review.findings
        if f.kind == "near_duplicate" and {facts["png"], facts["original"]} <= set(f.photos)
    ]
    assert len(copies) == 1
    finding = copies[0]
    assert set(finding.categories) == {"hat", "pants"}
    assert finding.details["across_categories"] == "yes"
    # The copy in hat (the category the model agrees with, the larger picture) is kept.
    assert finding.suggestion is not None and finding.suggestion.photos == (facts["png"],)


@pytest.mark.slow
def test_copy_in_the_test_set_is_a_leak_that_inflates_test_accuracy(planted) -> None:
    project, facts = planted
    leaks = [f for f in review_project(project).findings if f.kind == "leak"]
    assert len(leaks) == 1
    assert leaks[0].photos[0] == facts["test_copy"]
    assert facts["original"] in leaks[0].photos
    assert "test accuracy" in leaks[0].message
    assert leaks[0].suggestion is not None
    assert leaks[0].suggestion.action == "remove"
    assert leaks[0].suggestion.photos == (facts["test_copy"],)


@pytest.mark.slow
def test_applying_a_finding_is_one_undoable_logged_operation(planted) -> None:
    project, facts = planted
    finding = _mislabel_to_shoes(review_project(project).findings)
    before_history = project.undo_history()
    before_files = sorted(str(p.relative_to(project.root)) for p in project.root.rglob("*.jpg"))
    sentence = apply_finding(project, finding.id)
    assert sentence == f"Moved {SHOES_IN_HAT} photos to 'shoes'."
    for rel in facts["shoes"]:
        assert not (project.root / rel).exists()
        assert (project.root / "train" / "shoes" / Path(str(rel)).name).is_file()
    assert len(project.undo_history()) == len(before_history) + 1
    events = [e for e in project.log.recent(10) if e["event"] == "apply_suggestion"]
    assert events and events[-1]["origin"] == "review" and events[-1]["finding"] == finding.id
    project.undo()
    after_files = sorted(str(p.relative_to(project.root)) for p in project.root.rglob("*.jpg"))
    assert after_files == before_files
    assert project.undo_history() == before_history


@pytest.mark.slow
def test_applying_the_leak_removes_the_test_copy_and_undo_brings_it_back(planted) -> None:
    project, facts = planted
    leak = next(f for f in review_project(project).findings if f.kind == "leak")
    apply_finding(project, leak.id)
    assert not (project.root / str(facts["test_copy"])).exists()
    assert not [f for f in review_project(project).findings if f.kind == "leak"]
    project.undo()
    assert (project.root / str(facts["test_copy"])).is_file()


@pytest.mark.slow
def test_dismissed_findings_stay_hidden_even_after_retraining(planted) -> None:
    project, facts = planted
    review = review_project(project)
    finding = _mislabel_to_shoes(review.findings)
    assert dismiss_findings(project, [finding.id]) == 1
    again = review_project(project)
    assert finding.id not in {f.id for f in again.findings}
    assert again.dismissed >= 1
    assert not any(set(f.photos) & facts["shoes"] for f in again.findings if f.kind == "mislabel")
    # Remembered in the project, for every later reader, also after a new training.
    train_project(project)
    later = review_project(Project.open(project.root, source="web"))
    assert not any(set(f.photos) & facts["shoes"] for f in later.findings if f.kind == "mislabel")
    with pytest.raises(NotFoundError):
        dismiss_findings(project, ["0000000000"])
    with pytest.raises(NotFoundError):
        apply_finding(project, "0000000000")


def test_apply_suggestion_refuses_stale_or_foreign_photos_and_loses_nothing(planted) -> None:
    project, _ = planted
    history = project.undo_history()
    with pytest.raises(DuetmlError):
        apply_suggestion(
            project, Suggestion("move", ("train/hat/not-there.jpg",), to="shoes"), "proposal"
        )
    with pytest.raises(DuetmlError):
        apply_suggestion(project, Suggestion("remove", ("../duetml.toml",)), "proposal")
    with pytest.raises(DuetmlError):
        apply_suggestion(project, Suggestion("merge", to="hat", categories=("nope",)), "proposal")
    assert project.undo_history() == history
    # A valid proposal (e.g. from an agent) is one undoable operation too.
    text = apply_suggestion(
        project, Suggestion("merge", to="clothes", categories=("hat", "pants")), "proposal"
    )
    assert "into 'clothes'" in text
    assert "clothes" in project.category_names("train")
    project.undo()
    assert "clothes" not in project.category_names("train")
    assert {"hat", "pants"} <= set(project.category_names("train"))


@pytest.mark.slow
def test_cli_review_json_apply_dismiss_and_status(planted) -> None:
    project, facts = planted
    where = str(project.root)
    result = run_duetml("review", "--json", "-p", where)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["findings"]
    for finding in data["findings"]:
        assert {"id", "kind", "photos", "suggestion", "message", "score"} <= set(finding)
        assert finding["kind"] in {
            "mislabel",
            "outlier",
            "near_duplicate",
            "leak",
            "overlap",
            "mixed",
            "small",
        }
    kinds = {f["kind"] for f in data["findings"]}
    assert {"mislabel", "near_duplicate", "leak"} <= kinds
    status = run_duetml("status", "-p", where)
    assert "duetml review" in status.stdout
    assert f"{len(data['findings'])} finding" in status.stdout
    mislabel = next(
        f for f in data["findings"] if f["kind"] == "mislabel" and f["suggestion"]["to"] == "shoes"
    )
    applied = run_duetml("review", "apply", mislabel["id"], "-p", where)
    assert applied.returncode == 0, applied.stderr
    assert "Moved 4 photos to 'shoes'" in applied.stdout
    assert all(not (project.root / str(rel)).exists() for rel in facts["shoes"])
    leak = next(f for f in data["findings"] if f["kind"] == "leak")
    dismissed = run_duetml("review", "dismiss", leak["id"], "-p", where)
    assert dismissed.returncode == 0, dismissed.stderr
    listing = run_duetml("review", "-p", where)
    assert leak["id"] not in listing.stdout
    bad = run_duetml("review", "apply", "nosuchid", "-p", where)
    assert bad.returncode != 0 and "no finding" in bad.stderr and "Traceback" not in bad.stderr


def test_empty_and_tiny_categories_are_small_findings_and_a_dismissal_hides_them(
    planted, tmp_path: Path
) -> None:
    project, _ = planted
    project.add_category("scarf")
    belts = []
    for i, record in enumerate(project.images("test", "pants")[:2]):
        belts.append(tmp_path / f"belt{i}.png")
        Image.open(record.path).convert("RGB").rotate(90, expand=True).save(belts[-1])
    project.add_images("belt", belts)
    review = review_project(project)
    small = {f.categories[0]: f for f in review.findings if f.kind == "small"}
    assert small["scarf"].details["reason"] == "empty"
    assert small["belt"].details["reason"] == "tiny"
    assert small["belt"].suggestion is not None
    assert small["belt"].suggestion.action == "add_photos"
    with pytest.raises(DuetmlError, match="needs you"):
        apply_finding(project, small["belt"].id)
    dismiss_findings(project, [small["scarf"].id])
    assert "scarf" not in {f.categories[0] for f in review_project(project).findings}


def test_init_from_a_dataset_with_a_copy_says_where_the_kept_copy_is(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    hats = sorted((Path(__file__).parent.parent / "duetml" / "demo_data" / "hat").glob("*.jpg"))
    for category, photos in (("hat", hats[:3]), ("sun-hat", hats[:1])):
        (dataset / category).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, dataset / category / photo.name)
    result = run_duetml("init", str(tmp_path / "proj"), "--from", str(dataset))
    assert result.returncode == 0, result.stderr
    assert "the copy kept is train/hat/" in result.stdout
    project = Project.open(tmp_path / "proj")
    events = [e for e in project.log.recent(20) if e["event"] == "add_images"]
    skipped = [d for e in events for d in e.get("skipped_duplicates", [])]
    assert len(skipped) == 1
    assert skipped[0]["source"].endswith(f"sun-hat/{hats[0].name}")
    assert skipped[0]["kept"].startswith("train/hat/")
    assert (project.root / skipped[0]["kept"]).is_file()


def test_a_photo_added_after_the_callers_hashes_does_not_break_the_review(planted) -> None:
    """The page polls status while uploads land: the hashes status took a moment earlier
    lack the new photo, and the review must hash it rather than fail (a KeyError once)."""
    project, _ = planted
    before = project.hashes(project.images("train") + project.images("test"))
    late = project.images("train", "shoes")[-1].path
    shutil.copy(late, project.root / "train" / "pants" / "late.jpg")
    review = review_project(project, extract=False, hashes=before)
    assert review.stale  # the new photo is counted: the model is now older than the data
