"""`duetml predict` has ONNX Runtime build the backbone's session on a thread while it reads the
rest (backbones.open_session_early): the session it takes is the one begun early, once; a
guess never quantizes; a wrong guess changes nothing in what predict answers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from helpers import run_duetml

from duetml.backbones import get_backbone, int8_path, open_session, open_session_early
from duetml.backbones import session as sessions
from duetml.settings import SETTINGS_FILE

PHOTO = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)


def test_the_session_begun_early_is_taken_once_and_computes_the_same_features() -> None:
    backbone = get_backbone("efficientnet-lite0")
    open_session_early(backbone)
    early = sessions._EARLY[backbone.key]
    taken = open_session(backbone)
    assert early.session is taken
    assert backbone.key not in sessions._EARLY
    fresh = open_session(backbone)  # nothing left to take: built as before
    assert fresh is not taken
    assert taken is not None and fresh is not None
    np.testing.assert_array_equal(
        taken.run(["features"], {"photos": PHOTO})[0], fresh.run(["features"], {"photos": PHOTO})[0]
    )


def test_a_guess_never_quantizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETML_HOME", str(tmp_path / "home"))  # no int8 model made here yet
    int8 = get_backbone("efficientnet-lite0", "int8")
    open_session_early(int8)
    assert int8.key not in sessions._EARLY
    assert not int8_path(int8).exists()
    assert list((tmp_path / "home").rglob("*int8*")) == []


def test_predict_answers_the_same_when_the_guess_is_wrong(trained_demo: Path) -> None:
    """The model was trained at fp32; duetml.toml now says int8 (changed, not retrained):
    predict still uses the fp32 model's backbone, and answers as before."""
    photos = sorted((trained_demo / "test").rglob("*.jpg"))[:3]
    args = ["predict", *map(str, photos), "-p", str(trained_demo), "--json"]
    before = run_duetml(*args)
    assert before.returncode == 0, before.stderr
    settings_file = trained_demo / SETTINGS_FILE
    settings = tomllib.loads(settings_file.read_text())
    settings["precision"] = "int8"
    settings_file.write_text(tomli_w.dumps(settings))
    after = run_duetml(*args)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert '"category"' in after.stdout


def test_predict_outside_a_project_says_so(tmp_path: Path) -> None:
    result = run_duetml("predict", str(tmp_path / "photo.jpg"), "-p", str(tmp_path))
    assert result.returncode == 9
    assert "is not a duetml project" in result.stderr


def test_an_extractor_takes_the_early_session_at_its_first_batch() -> None:
    """The photos decode while the session is still being built: the extractor waits for it
    only when it has a batch to run."""
    from duetml.features import FeatureExtractor

    backbone = get_backbone("efficientnet-lite0")
    open_session_early(backbone)
    early = sessions._EARLY[backbone.key]
    extractor = FeatureExtractor(backbone)
    assert sessions.session_begun(backbone)  # not taken yet
    features = extractor.run(PHOTO)
    assert extractor.session is early.session
    assert not sessions.session_begun(backbone)
    np.testing.assert_array_equal(
        features, open_session(backbone).run(["features"], {"photos": PHOTO})[0]
    )
