"""Training, evaluation and prediction on real photos, incremental and crash-safe."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import msgspec
import numpy as np
import pytest
from helpers import DEMO_DATA, demo_photos
from PIL import Image

from duetml.classifier import TrainedModel
from duetml.errors import BusyError, NoModelError, NotEnoughDataError
from duetml.evaluation import evaluate_project
from duetml.features import Progress
from duetml.prediction import load_model, model_path, predict_sources
from duetml.project import Project
from duetml.training import train_project


@pytest.mark.slow
def test_end_to_end_on_real_photos_is_far_above_chance(tmp_path: Path) -> None:
    project, _ = Project.init(tmp_path / "clothes", goal="sort my clothes")
    held_out = {}
    for category in ("hat", "pants", "shoes", "t-shirt"):
        photos = demo_photos(category)
        project.add_images(category, photos[4:])
        held_out[category] = photos[:4]
    report = train_project(project)
    assert report.cv_accuracy is not None
    assert report.images == 84 and report.cv_accuracy > 0.8  # chance is 0.25
    evaluation = evaluate_project(project)
    assert "cross-validation" in evaluation.source and evaluation.accuracy > 0.8
    sources = [p for photos in held_out.values() for p in photos]
    truth = [c for c, photos in held_out.items() for _ in photos]
    predictions = predict_sources(project, sources, [str(s) for s in sources])
    right = sum(p.ranking[0][0] == t for p, t in zip(predictions, truth, strict=True))
    assert right / len(truth) >= 0.75
    for p in predictions:
        probs = [prob for _, prob in p.ranking]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_retrain_after_adding_five_photos_extracts_only_those(
    trained_demo: Path, tmp_path: Path
) -> None:
    project = Project.open(trained_demo)
    # Five new photos (the demo's test photos moved into training) and a rename: only the
    # new content needs features; renaming or merging never recomputes anything.
    project.rename_category("shoes", "footwear")
    staging = tmp_path / "new"
    staging.mkdir()
    for path in demo_photos("hat")[:5]:  # mirrored: real photos with new content
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(staging / path.name)
    assert len(project.add_images("hat", sorted(staging.iterdir())).added) == 5
    report = train_project(project)
    assert report.extracted == 5 and report.images == 85
    assert "footwear" in report.categories


def test_eval_uses_the_test_set_when_there_is_one(trained_demo: Path) -> None:
    report = evaluate_project(Project.open(trained_demo))
    assert report.source == "test set"
    assert sum(map(sum, report.confusion)) == 20 and report.accuracy >= 0.7
    assert [row["category"] for row in report.per_category] == ["hat", "pants", "shoes", "t-shirt"]
    for mistake in report.mistakes:
        assert mistake["true"] != mistake["predicted"] and mistake["image"].startswith("test/")


def test_predict_reports_unreadable_inputs_and_keeps_going(
    trained_demo: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    good = demo_photos("shoes")[0]
    results = predict_sources(Project.open(trained_demo), [good, bad], ["good", "bad"])
    assert (
        results[0].error is msgspec.UNSET
        and isinstance(results[1].error, str)
        and "not an image" in results[1].error
    )


def test_no_model_yet(new_project: Project) -> None:
    with pytest.raises(NoModelError, match="duetml train"):
        load_model(new_project)
    with pytest.raises(NotEnoughDataError, match="no photos"):
        train_project(new_project)


def test_a_one_photo_category_still_trains_and_says_why_no_cv(new_project: Project) -> None:
    new_project.add_images("hat", demo_photos("hat")[:6])
    new_project.add_images("shoes", demo_photos("shoes")[:1])
    report = train_project(new_project)
    assert report.cv_accuracy is None and "'shoes' has only 1 photo" in str(report.why_no_cv)
    with pytest.raises(NotEnoughDataError, match="test set"):
        evaluate_project(new_project)


def test_interrupted_training_keeps_the_old_model(trained_demo: Path, tmp_path: Path) -> None:
    project = Project.open(trained_demo)
    before = model_path(project).read_bytes()
    staging = tmp_path / "more"
    shutil.copytree(DEMO_DATA / "pants", staging)
    # Flip a few bytes outside the image data so the content (and the hash) is new.
    for photo in staging.iterdir():
        photo.write_bytes(photo.read_bytes() + b"\0" * 7)
    project.add_images("pants", [staging])

    def ctrl_c(progress: Progress) -> None:
        if progress.done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_project(project, progress=ctrl_c)
    assert model_path(project).read_bytes() == before
    TrainedModel.load(model_path(project))
    # The features computed before the interruption were kept.
    report = train_project(project)
    assert report.extracted < 25


@pytest.mark.parametrize("failure", ["crash", "disk full"])
def test_a_failed_save_keeps_the_old_model(
    trained_demo: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    project = Project.open(trained_demo)
    path = model_path(project)
    before = path.read_bytes()
    project.remove_images([project.images("train", "hat")[0].rel])
    real_fsync = os.fsync

    def broken_fsync(fd: int) -> None:
        if failure == "disk full":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise KeyboardInterrupt  # the process killed in the middle of the write

    monkeypatch.setattr(os, "fsync", broken_fsync)  # atomic's os
    with pytest.raises((OSError, KeyboardInterrupt)):
        train_project(project)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_two_trainings_at_once_the_second_is_told_busy(trained_demo: Path, tmp_path: Path) -> None:
    project = Project.open(trained_demo)
    started, release = threading.Event(), threading.Event()

    def slow_progress(progress: Progress) -> None:
        started.set()
        release.wait(30)

    # Make the first trainer extract something so it sits inside the lock.
    Image.open(demo_photos("hat")[0]).rotate(90).save(tmp_path / "new.jpg")
    assert project.add_images("hat", [tmp_path / "new.jpg"]).added
    first = threading.Thread(target=lambda: train_project(project, progress=slow_progress))
    first.start()
    assert started.wait(60)
    try:
        with pytest.raises(BusyError, match="Another training"):
            train_project(Project.open(trained_demo))
    finally:
        release.set()
        first.join(60)


def test_model_from_another_backbone_is_reported(trained_demo: Path) -> None:
    project = Project.open(trained_demo)
    project.settings = replace(project.settings, backbone="mobilenet-v3-small")
    with pytest.raises(NoModelError, match="trained with efficientnet-lite0"):
        load_model(project)


def test_corrupt_model_file_is_a_clear_error(trained_demo: Path) -> None:
    project = Project.open(trained_demo)
    model_path(project).write_bytes(b"garbage")
    from duetml.errors import ModelFileError

    with pytest.raises(ModelFileError, match="duetml train"):
        load_model(project)


@pytest.mark.slow
def test_a_small_change_keeps_the_choice_and_predicts_as_a_full_selection(
    trained_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duetml.classifier import selection

    monkeypatch.setattr(selection, "REUSE_ABOVE", 0)  # the demo is small; 5,000 photos are not
    # This test is about re-running the cross-validation of the kept choice: no extension.
    monkeypatch.setattr(selection, "extend_cross_validation", lambda *args: None)
    staging = tmp_path / "new"
    staging.mkdir()
    for path in demo_photos("pants")[:3]:  # mirrored: real photos with new content
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(staging / path.name)
    Project.open(trained_demo).add_images("pants", sorted(staging.iterdir()))
    shutil.copytree(trained_demo, tmp_path / "full")
    phases: list[str] = []
    fast = train_project(
        Project.open(trained_demo),
        progress=lambda p: phases.append(p.phase) if p.phase not in phases else None,
    )
    assert fast.reused_choice
    assert phases == [
        "features",
        "kernel",
        "selection",
        "calibration",
        "final fit",
        "not sure",
        "saving",
    ]
    # The shortcut only narrows which candidates are tried: a full training that tries the
    # same candidate gives the same model, so the same predictions on every demo photo.
    monkeypatch.setattr(selection, "CANDIDATES", ((fast.kernel, fast.C),))
    full = train_project(Project.open(tmp_path / "full"), reuse_choice=False)
    assert not full.reused_choice and full.cv_accuracy == fast.cv_accuracy
    photos = [p for c in ("hat", "pants", "shoes", "t-shirt") for p in demo_photos(c)]
    fast_predictions = predict_sources(Project.open(trained_demo), photos, [""] * len(photos))
    full_predictions = predict_sources(Project.open(tmp_path / "full"), photos, [""] * len(photos))
    assert [p.ranking for p in fast_predictions] == [p.ranking for p in full_predictions]


def _mirrored(category: str, count: int, folder: Path) -> list[Path]:
    """Real photos with new content (mirrored), as a user adds them."""
    folder.mkdir()
    for path in demo_photos(category)[:count]:
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / path.name)
    return sorted(folder.iterdir())


@pytest.mark.slow
def test_a_small_change_extends_the_cross_validation_and_fits_the_same_svm(
    trained_demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from duetml.classifier import selection
    from duetml.features import features_for_sources
    from duetml.prediction import model_backbone

    monkeypatch.setattr(selection, "REUSE_ABOVE", 0)  # the demo is small; 5,000 photos are not
    before = load_model(Project.open(trained_demo))
    Project.open(trained_demo).add_images("pants", _mirrored("pants", 3, tmp_path / "new"))
    shutil.copytree(trained_demo, tmp_path / "full")
    phases: list[str] = []
    fast = train_project(
        Project.open(trained_demo),
        progress=lambda p: phases.append(p.phase) if p.phase not in phases else None,
    )
    # No selection, no cross-validation: the last one is extended with the 3 new photos,
    # and the report says so (the CLI and the page name it a held-out accuracy).
    assert phases == ["features", "kernel", "final fit", "not sure", "saving"]
    assert fast.cv_added_since == 3 and fast.cv_fresh_photos == before.meta["images"]
    assert fast.cv_fresh is False
    model = load_model(Project.open(trained_demo))
    old_rows = {row[0]: row for row in before.meta["cv_results"]}
    new_rows = [row for row in model.meta["cv_results"] if row[0] not in old_rows]
    assert len(new_rows) == 3 and all(row[1] == "pants" for row in new_rows)
    for rel, true, predicted, confidence in model.meta["cv_results"]:
        if rel in old_rows:  # the fold's prediction stands (stored as float32 in between)
            assert old_rows[rel][1:3] == [true, predicted]
            assert confidence == pytest.approx(old_rows[rel][3], abs=1e-6)
    # The SVM is the one a full training that selects the same (kernel, C) fits: the same
    # decision values on every demo photo.
    monkeypatch.setattr(selection, "CANDIDATES", ((fast.kernel, fast.C),))
    full = train_project(Project.open(tmp_path / "full"), reuse_choice=False)
    assert full.cv_added_since == 0 and full.cv_fresh is True
    photos = [p for c in ("hat", "pants", "shoes", "t-shirt") for p in demo_photos(c)]
    features, _ = features_for_sources(photos, model_backbone(model))
    full_model = load_model(Project.open(tmp_path / "full"))
    assert np.allclose(model.decision(features), full_model.decision(features))
    assert (model.decision(features).argmax(1) == full_model.decision(features).argmax(1)).all()

    # A photo moved to another category: the last model trained on it, so it cannot stand
    # in as held out; the training cross-validates afresh.
    project = Project.open(trained_demo)
    rel = project.images("train", "hat")[0].rel
    project.move_images([rel], "shoes")
    moved = train_project(project)
    assert moved.cv_added_since == 0 and moved.cv_accuracy is not None


def test_prediction_reads_only_the_extras_it_needs(trained_demo: Path) -> None:
    from duetml.prediction import PREDICTION_EXTRAS

    project = Project.open(trained_demo)
    everything = load_model(project)
    lean = load_model(project, PREDICTION_EXTRAS)
    assert "oof_probabilities" in everything.extras and "oof_probabilities" not in lean.extras
    assert set(lean.extras) == set(PREDICTION_EXTRAS) and not load_model(project, ()).extras
    photos = demo_photos("shoes")[:4]
    with_all = predict_sources(project, photos, [""] * 4, model=everything)
    assert predict_sources(project, photos, [""] * 4, model=lean) == with_all
