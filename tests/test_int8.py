"""int8 extraction: the quantized backbone agrees with fp32, is made the same way twice, is
cached apart from fp32, and is one flag away (`duetml train --precision int8`)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from helpers import demo_photos, make_project, run_duetml

from duetml import backbones
from duetml.backbones import get_backbone
from duetml.errors import DuetmlError
from duetml.features import FeatureCache, FeatureExtractor
from duetml.prediction import load_model, model_backbone, predict_sources
from duetml.project import Project
from duetml.settings import SETTINGS_FILE
from duetml.training import train_project

NAME = "efficientnet-lite0"


def test_new_projects_record_their_precision_and_older_ones_are_fp32(tmp_path: Path) -> None:
    new = make_project(tmp_path / "new")
    assert new.precision == "fp32"
    assert tomllib.loads((new.root / SETTINGS_FILE).read_text())["precision"] == "fp32"
    old = tmp_path / "old"
    old.mkdir()
    # duetml.toml as duetml wrote it before int8 existed: no `precision` line.
    (old / SETTINGS_FILE).write_text('format = 1\ngoal = ""\nbackbone = "efficientnet-lite0"\n')
    project = Project(old)
    assert project.precision == "fp32"
    assert project.feature_backbone.key == NAME


@pytest.mark.slow
def test_int8_and_fp32_predictions_agree_on_the_demo_photos(
    trained_demo: Path, tmp_path: Path
) -> None:
    """Trained at each precision on the same photos, the two models give the same top
    category for at least 98% of the demo photos (out of fold for the training photos)."""
    fp32_project = Project.open(trained_demo)
    fp32_model = load_model(fp32_project)
    assert fp32_model.meta["precision"] == "fp32"
    int8_root = tmp_path / "int8"
    shutil.copytree(trained_demo, int8_root, symlinks=True)
    int8_project = Project.open(int8_root)
    assert int8_project.set_precision("int8")
    report = train_project(int8_project)
    assert report.extracted == report.images  # nothing was taken from the fp32 cache
    int8_model = load_model(int8_project)
    assert int8_model.meta["precision"] == "int8"
    assert model_backbone(int8_model).precision == "int8"

    out_of_fold = {
        precision: {row[0]: row[2] for row in model.meta["cv_results"]}
        for precision, model in (("int8", int8_model), ("fp32", fp32_model))
    }
    assert out_of_fold["int8"].keys() == out_of_fold["fp32"].keys()
    trained = [out_of_fold["int8"][rel] == out_of_fold["fp32"][rel] for rel in out_of_fold["fp32"]]
    held_out = sorted((trained_demo / "test").glob("*/*.jpg"))
    labels = [str(p) for p in held_out]
    int8_top = [p.ranking[0][0] for p in predict_sources(int8_project, held_out, labels)]
    fp32_top = [p.ranking[0][0] for p in predict_sources(fp32_project, held_out, labels)]
    tested = [a == b for a, b in zip(int8_top, fp32_top, strict=True)]
    agreement = np.mean(trained + tested)
    assert len(trained) + len(tested) == 100
    assert agreement >= 0.98, agreement


@pytest.mark.slow
def test_the_quantized_model_is_the_same_bytes_on_a_second_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    int8 = get_backbone(NAME, "int8")
    first = backbones.ensure_int8(int8)
    made_at = first.stat().st_mtime_ns
    assert backbones.ensure_int8(int8) == first and first.stat().st_mtime_ns == made_at
    # The quantized model is made in the user cache, never beside the model in the package.
    assert backbones.ensure_onnx(int8) == backbones.shipped_onnx(int8)
    assert first.parent != backbones.MODELS_DIR
    # Another machine: an empty cache beside the same shipped model.
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))
    second = backbones.ensure_int8(int8)
    assert second.parent != first.parent and second.name == first.name
    assert second.read_bytes() == first.read_bytes()
    # Nothing else is left beside it (the quantizer's scratch files are gone).
    assert [p.name for p in second.parent.iterdir()] == [second.name]


@pytest.mark.slow
def test_int8_features_are_close_to_fp32_and_cached_apart(tmp_path: Path) -> None:
    photos = demo_photos("shoes", 4)
    fp32, int8 = get_backbone(NAME, "fp32"), get_backbone(NAME, "int8")
    vectors = {}
    for backbone in (fp32, int8):
        extracted = list(FeatureExtractor(backbone).extract(photos))
        assert all(v is not None for _, v, _ in extracted)
        vectors[backbone.precision] = np.stack([v for _, v, _ in extracted])  # type: ignore[misc]
    a, b = vectors["fp32"], vectors["int8"]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.9 and not np.array_equal(a, b)

    folder = tmp_path / "cache"
    folder.mkdir()
    digest = "ab" * 32
    for backbone in (fp32, int8):
        cache = FeatureCache(folder, backbone)
        assert digest not in cache  # the other precision's vector is not seen
        cache.put(digest, vectors[backbone.precision][0])
        cache.save()
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2
    assert sum(name.startswith(f"features-{NAME}.") for name in names) == 1
    assert sum(name.startswith(f"features-{NAME}-int8.") for name in names) == 1
    for backbone in (fp32, int8):
        got = FeatureCache(folder, backbone).get(digest)
        assert got is not None and np.array_equal(got, vectors[backbone.precision][0])


@pytest.mark.slow
def test_train_precision_int8_from_the_shell_and_back_to_fp32(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", per_category=6)
    root = str(project.root)
    settings = project.root / SETTINGS_FILE
    bad = run_duetml("train", "--precision", "int4", "-p", root)
    assert bad.returncode != 0 and "int8" in bad.stderr and "fp32" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert tomllib.loads(settings.read_text())["precision"] == "fp32"

    result = run_duetml("train", "--precision", "int8", "-p", root)
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(settings.read_text())["precision"] == "int8"
    assert load_model(Project.open(project.root)).meta["precision"] == "int8"
    cache = project.root / ".duetml" / "cache"
    assert list(cache.glob(f"features-{NAME}-int8.*")) and not list(
        cache.glob(f"features-{NAME}.*")
    )
    # The choice stays: a plain `duetml train` later keeps int8, extracting nothing again.
    again = run_duetml("train", "--json", "-p", root)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["extracted"] == 0
    assert load_model(Project.open(project.root)).meta["precision"] == "int8"
    # And fp32 is one flag away; its features are cached beside the int8 ones.
    back = run_duetml("train", "--precision", "fp32", "-p", root)
    assert back.returncode == 0, back.stderr
    assert load_model(Project.open(project.root)).meta["precision"] == "fp32"
    assert list(cache.glob(f"features-{NAME}-int8.*")) and list(cache.glob(f"features-{NAME}.*"))


def test_an_unknown_precision_is_one_clear_sentence() -> None:
    with pytest.raises(DuetmlError, match="choose fp32 .* or int8"):
        get_backbone(NAME, "fp16")
