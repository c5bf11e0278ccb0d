"""`duetml export`: the exported folder runs without duetml and agrees with `duetml predict`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_duetml
from PIL import Image

from duetml.demo import DEMO_DATA
from duetml.project import Project

# Runs in `python -I` (no PYTHONPATH, no user site): plain onnxruntime on the given pixels.
RUN_MODEL = """
import json, sys
import numpy as np, onnxruntime as ort
photos = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
(probabilities,) = session.run(["probabilities"], {"photos": photos})
assert "duetml" not in sys.modules, "the exported model must not need duetml"
print(json.dumps(probabilities.tolist()))
"""

# predict.py's own decoding and printing, also isolated from duetml.
RUN_SCRIPT = """
import runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    assert "duetml" not in sys.modules, "predict.py must not import duetml"
"""


@pytest.fixture
def exported(trained_demo: Path, tmp_path: Path) -> Path:
    out = tmp_path / "exported"
    result = run_duetml("export", "-p", str(trained_demo), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _test_photos(project: Path) -> list[Path]:
    photos = sorted((project / "test").glob("*/*.jpg"))
    assert len(photos) >= 10
    return photos


def _duetml_predictions(project: Path, photos: list[Path]) -> dict[str, dict[str, object]]:
    result = run_duetml("predict", "--json", "--top", "10", "-p", str(project), *map(str, photos))
    assert result.returncode == 0, result.stderr
    return {row["image"]: row for row in json.loads(result.stdout)}


@pytest.mark.slow
def test_export_writes_the_files_and_labels(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(
        ["model.onnx", "labels.json", "predict.py", "README.md"]
    )
    labels = json.loads((exported / "labels.json").read_text())
    assert labels["categories"] == ["hat", "pants", "shoes", "t-shirt"]
    assert labels["backbone"] == "efficientnet-lite0"
    assert 0.5 < labels["cv_accuracy"] <= 1.0
    assert labels["trained_at"].startswith("20")
    assert "mean" in labels["preprocessing"]
    assert b"pickle" not in (exported / "predict.py").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_exported_model_matches_duetml_on_the_same_pixels(
    trained_demo: Path, tmp_path: Path, precision: str
) -> None:
    """Whichever precision the project trained with, the export carries that backbone."""
    from duetml.backbones import INPUT_SIZE
    from duetml.features import features_for_sources
    from duetml.images import load_square
    from duetml.prediction import load_model, model_backbone
    from duetml.training import train_project

    project = Project.open(trained_demo)
    if project.set_precision(precision):
        train_project(project)
    exported = tmp_path / "exported"
    result = run_duetml("export", "-p", str(trained_demo), "-o", str(exported))
    assert result.returncode == 0, result.stderr
    labels = json.loads((exported / "labels.json").read_text())
    assert labels["precision"].startswith(f"{precision} backbone")
    photos = _test_photos(trained_demo)
    model = load_model(Project.open(trained_demo))
    assert model_backbone(model).precision == precision
    features, _ = features_for_sources(photos, model_backbone(model))
    expected = model.predict_proba(features)
    pixels = tmp_path / "pixels.npy"
    np.save(pixels, np.stack([load_square(p, INPUT_SIZE) for p in photos]))
    result = subprocess.run(
        [sys.executable, "-I", "-c", RUN_MODEL, str(exported / "model.onnx"), str(pixels)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    got = np.array(json.loads(result.stdout))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    cli = _duetml_predictions(trained_demo, photos)
    for photo, row in zip(photos, got, strict=True):
        assert model.categories[int(row.argmax())] == cli[str(photo)]["category"], photo


@pytest.mark.slow
def test_predict_script_agrees_with_duetml_predict(trained_demo: Path, exported: Path) -> None:
    photos = _test_photos(trained_demo)
    cli = _duetml_predictions(trained_demo, photos)
    script = exported / "predict.py"
    run = [sys.executable, "-I", "-c", RUN_SCRIPT, str(script)]
    result = subprocess.run(
        [*run, "--json", "--top", "10", *map(str, photos)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    worst = 0.0
    for row in rows:
        ours = cli[row["image"]]
        assert row["category"] == ours["category"], row["image"]
        theirs = {t["category"]: t["probability"] for t in ours["top"]}  # type: ignore[attr-defined]
        for t in row["top"]:
            worst = max(worst, abs(t["probability"] - theirs[t["category"]]))
    # predict.py reproduces duetml's OpenCV resize bit for bit in NumPy, so only duetml's
    # rounding of its JSON to 4 decimals separates the two.
    assert worst <= 1e-4, worst
    assert [r["not_sure"] for r in rows] == [cli[r["image"]]["not_sure"] for r in rows]
    text = subprocess.run(
        [*run, str(photos[0])], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    line = run_duetml("predict", "-p", str(trained_demo), str(photos[0])).stdout
    assert text.split(": ", 1)[0] == str(photos[0])
    assert text.split(": ", 1)[1].split(" ")[0] == line.split(": ", 1)[1].split(" ")[0]


@pytest.mark.slow
def test_export_without_a_model_says_what_to_do(tmp_path: Path, new_project: Project) -> None:
    result = run_duetml("export", "-p", str(new_project.root), "-o", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "duetml train" in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_ridge_and_rbf_models_export_exactly(trained_demo: Path) -> None:
    """The other model kinds duetml trains (RBF SVM; ridge for large projects) give the same
    probabilities in ONNX as `predict_proba`, on the demo's real features."""
    import dataclasses

    import onnxruntime as ort

    from duetml.classifier import RidgeModel, SvmModel, train
    from duetml.export import svm_graph
    from duetml.features import features_for_sources
    from duetml.prediction import load_model, model_backbone

    model = load_model(Project.open(trained_demo))
    photos = _test_photos(trained_demo)
    features, _ = features_for_sources(photos, model_backbone(model))
    labels = [p.parent.name for p in photos]
    rng = np.random.default_rng(0)
    k, d = len(model.categories), features.shape[1]
    ridge = RidgeModel(
        categories=model.categories,
        backbone=model.backbone,
        C=model.C,
        temperature=0.3,
        weights=rng.normal(size=(k, d)),
        bias=rng.normal(size=k),
    )
    rbf, _, _ = train(features, labels, model.categories, model.backbone)
    assert isinstance(rbf, SvmModel)
    rbf = dataclasses.replace(rbf, kernel="rbf", margin_weight=2.0, temperature=0.7)
    for candidate in (ridge, rbf):
        graph = svm_graph(candidate, d, 17, 8)
        session = ort.InferenceSession(
            graph.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        (got,) = session.run(["probabilities"], {"features": features.astype(np.float32)})
        np.testing.assert_allclose(got, candidate.predict_proba(features), atol=1e-9, rtol=0)


@pytest.mark.slow
def test_predict_script_resizes_exactly_as_duetml(tmp_path: Path) -> None:
    """The pixels predict.py feeds the model are duetml's, bit for bit: on every demo photo
    (decoding, crop and resize) and on random images of many sizes; and they are still the
    pixels of OpenCV's resize, which duetml used before (its cached features stay valid)."""
    from duetml import export_predict
    from duetml.images import load_square

    for photo in sorted(DEMO_DATA.glob("*/*.jpg")):
        np.testing.assert_array_equal(export_predict.load_photo(photo), load_square(photo, 224))
    rng = np.random.default_rng(0)
    # sha256 of cv2.resize(pixels, (224, 224), interpolation=cv2.INTER_LINEAR) with OpenCV
    # 5.1.0 (opencv-python-headless 5.1.0.95), when duetml still resized with it, of these
    # random pixels made in this order: OpenCV is no longer installed, its output is kept.
    opencv = {
        (100, 100): "338f067775af65c9",
        (180, 250): "cfee037a5f98b4c1",
        (224, 300): "de2142bc11f9a92b",
        (225, 225): "03d232c9e39dfdea",
        (447, 447): "e2d0442b8e6d1880",
        (301, 999): "551c469aa24849c5",
    }
    for (height, width), digest in opencv.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        resized = export_predict.resize_bilinear(pixels, 224)
        assert resized.shape == (224, 224, 3) and resized.dtype == np.uint8
        assert hashlib.sha256(resized.tobytes()).hexdigest()[:16] == digest, (height, width)
    # A PNG (no draft decoding) large enough to be reduced first, and an EXIF-rotated JPEG.
    big = Image.fromarray(rng.integers(0, 256, (700, 1000, 3), dtype=np.uint8))
    big.save(tmp_path / "big.png")
    rotated = Image.open(sorted(DEMO_DATA.glob("hat/*.jpg"))[0])
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    for photo in (tmp_path / "big.png", tmp_path / "rotated.jpg"):
        np.testing.assert_array_equal(export_predict.load_photo(photo), load_square(photo, 224))


@pytest.mark.slow
def test_exported_model_says_not_sure_where_duetml_does(trained_demo: Path, tmp_path: Path) -> None:
    """A model trained without shoes, exported: predict.py applies the rule from labels.json
    to the model's neighbour_distance output, and agrees with `duetml predict` on shoes and on
    the project's own test photos; --no-abstain gives the bare argmax."""
    from duetml.training import train_project

    project = Project.open(trained_demo)
    project.remove_category("shoes")
    train_project(project)
    out = tmp_path / "no-shoes"
    assert run_duetml("export", "-p", str(trained_demo), "-o", str(out)).returncode == 0
    labels = json.loads((out / "labels.json").read_text())
    rule = labels["not_sure"]
    assert rule["output"] == "neighbour_distance" and 0 < rule["distance_threshold"] < 2
    assert "## Not sure" in (out / "README.md").read_text()
    photos = sorted(DEMO_DATA.glob("shoes/*.jpg"))[:10] + _test_photos(trained_demo)
    cli = _duetml_predictions(trained_demo, photos)
    run = [sys.executable, "-I", "-c", RUN_SCRIPT, str(out / "predict.py")]
    rows = json.loads(
        subprocess.run(
            [*run, "--json", *map(str, photos)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert [r["not_sure"] for r in rows] == [cli[str(p)]["not_sure"] for p in photos]
    assert [r["reason"] for r in rows] == [cli[str(p)]["reason"] for p in photos]
    assert sum(r["not_sure"] for r in rows[:10]) >= 8  # the shoes
    assert sum(r["not_sure"] for r in rows[10:]) <= 3  # 15 photos of its own categories
    shoe = str(photos[0])
    text = subprocess.run([*run, shoe], capture_output=True, text=True, check=True).stdout
    assert text.startswith(f"{shoe}: not sure (closest: ")
    bare = subprocess.run([*run, "--no-abstain", shoe], capture_output=True, text=True).stdout
    assert "not sure" not in bare and bare.split(": ", 1)[1].split(" ")[0] in labels["categories"]


def test_the_export_readme_names_an_extended_accuracy_held_out() -> None:
    from duetml.export import _readme

    labels = {"categories": ["hat", "shoes"], "backbone": "efficientnet-lite0", "not_sure": None}
    fresh = _readme({**labels, "cv_accuracy": 0.9, "cv_added_since": 0})
    assert "Cross-validated accuracy at training: 90.0%." in fresh
    extended = _readme({**labels, "cv_accuracy": 0.9, "cv_added_since": 4})
    assert "Held-out accuracy at training: 90.0%" in extended
    assert "4 photo(s) added since" in extended and "Cross-validated" not in extended


@pytest.mark.parametrize("fmt", ["PPM", "EPS", "PCX"])
def test_predict_script_opens_only_the_formats_duetml_accepts(tmp_path: Path, fmt: str) -> None:
    """Issue 17, item 7: predict.py let Pillow open any format it knows (EPS reaches
    Ghostscript where it is installed); it now reads only JPEG, PNG, WebP, BMP, GIF and TIFF."""
    from duetml import export_predict
    from duetml.images import DECODABLE_FORMATS

    assert export_predict.FORMATS == DECODABLE_FORMATS
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.new("RGB", (300, 300), (10, 200, 30)).save(path, fmt)
    opened: list[str] = []
    real_open = Image.open

    def watched_open(*args: object, **kwargs: object) -> Image.Image:
        image = real_open(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(str(image.format))
        return image

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image, "open", watched_open)  # export_predict's PIL.Image
        with pytest.raises(OSError):
            export_predict.load_photo(path)
    assert opened == []  # refused when identified, never opened as that format


@pytest.mark.parametrize("inside", ["train/hat", "train/hat/model", "test/shoes", ".duetml/x"])
def test_export_into_the_projects_data_is_refused(trained_demo: Path, inside: str) -> None:
    """Issue 17, item 7: `export -o` into a category folder put model.onnx, predict.py and
    README.md among the photos."""
    before = sorted(p.relative_to(trained_demo) for p in trained_demo.rglob("*"))
    result = run_duetml("export", "-p", str(trained_demo), "-o", str(trained_demo / inside))
    assert result.returncode != 0
    said = result.stderr + result.stdout
    assert "export into a folder of its own" in said and "Traceback" not in said
    after = sorted(p.relative_to(trained_demo) for p in trained_demo.rglob("*"))
    assert [p for p in after if p not in before and "events" not in str(p)] == []
